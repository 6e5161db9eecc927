"""Wall time of the whole demo (synth → map) per stage; median over repeats.

Run: .venv/bin/python benchmarks/demo_walltime.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from cropmeta.demo import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runs = []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(run_demo(tmp, seed=args.seed + i)["seconds"])
    for stage in runs[0]:
        values = [r[stage] for r in runs]
        print(f"{stage:>12}: median {statistics.median(values):7.1f} s  (runs: {values})")


if __name__ == "__main__":
    main()
