"""The K = 5 figures of `cropmeta evaluate` runs as Markdown tables for BENCHMARKS.md.

Run: .venv/bin/python benchmarks/evaluation_table.py eval-out/*/results.json [--shots 5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cropmeta.evaluate.report import results_table, scored_learners


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--shots", type=int, default=5)
    args = parser.parse_args()
    for path in args.results:
        results = json.loads(path.read_text())
        learners = scored_learners(results)
        for target, summary in results["summary"].items():
            fold = next(f for f in results["folds"] if f["target"] == target)
            print(f"**{target}** (sources: {', '.join(fold['sources'])}; {path.parent.name})\n")
            print("\n".join(results_table(summary, learners, args.shots)) + "\n")


if __name__ == "__main__":
    main()
