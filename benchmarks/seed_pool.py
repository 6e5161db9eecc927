"""Meta-learner against baselines over several training seeds: `cropmeta evaluate` runs pooled.

One `evaluate` run trains each model once: the meta-learner, and the source classifier behind
the transfer and source-only baselines. Its confidence intervals cover the support/query draws,
not the training. Training noise is large under a region shift: on demo world 6's Poltava,
source-only scored 0.811 OA with one torch thread and 0.670 with two, the same seed and data
(docs/studies/simulated-regions-and-class-heads.md). This script pools runs that differ only in
``--seed`` (training seed and draws): per target, every method's mean overall accuracy and
macro-F1 over all (seed, draw) pairs, the spread of its per-seed means, and whether each
meta-learner beats every baseline in both metrics pooled and in each seed alone (at the reports'
headline K unless ``--shots``).
The runs must share every setting but the seed (the script checks) and the world (it cannot:
give one world's runs).

Run (three training seeds of one world, ANIL only, ≈ 1.5 min each at 1 thread):
  OMP_NUM_THREADS=1 SEED=9 TRAIN_SEEDS="9 109 209" LEARNERS=anil SHOTS=5 OUT=/tmp/seeds/9 \\
      bash pipelines/evaluate-demo.sh
runs the three evaluations into /tmp/seeds/9/seed-S and this script over them
(/tmp/seeds/9/pooled.md); by hand: ``.venv/bin/python benchmarks/seed_pool.py DIR DIR ...``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from cropmeta.evaluate.report import headline_shots

METRICS = ("overall_accuracy", "macro_f1")


def load(folder: Path) -> tuple[int, dict, list[dict]]:
    """(training seed, protocol settings, the run's scored draws)."""
    results = json.loads((folder / "results.json").read_text())
    return results["seed"], results["config"], [r for r in results["runs"] if "metrics" in r]


def wins(means: dict[str, dict[str, float]], learner: str, baselines: set[str]) -> list[str]:
    """The metrics in which ``learner`` is above every baseline."""
    return [k for k in METRICS if all(means[learner][k] > means[b][k] for b in baselines)]


def verdict(won: list[str]) -> str:
    if len(won) == len(METRICS):
        return "wins both"
    return f"wins {won[0]} only" if won else "loses both"


def pooled_runs(folders: list[Path], shots: int | None) -> tuple[dict, set[str], int]:
    """target -> method -> training seed -> metric -> values over the draws at K; the
    meta-learners; K. Refuses runs whose settings differ or whose seeds repeat."""
    scores: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list))))
    learners: set[str] = set()
    configs, seen = [], set()
    for folder in folders:
        seed, config, runs = load(folder)
        if configs and config != configs[0] or seed in seen:
            raise SystemExit(
                f"seed_pool.py: {folder}: not the first run's protocol with a new seed"
            )
        configs.append(config)
        seen.add(seed)
        k = shots or headline_shots(config["shots"])
        for r in (r for r in runs if r["shots"] == k):
            for metric in METRICS:
                scores[r["target"]][r["method"]][seed][metric].append(r["metrics"][metric])
            if r["learner"]:
                learners.add(r["method"])
    if not learners:
        raise SystemExit(f"seed_pool.py: no meta-learner was scored at K = {k}")
    return scores, learners, k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="evaluate output folders")
    parser.add_argument("--shots", type=int, help="K (default: the reports' headline K)")
    args = parser.parse_args()
    scores, learners, k = pooled_runs(args.folders, args.shots)
    tally = {m: {"pooled": 0, "seeds": 0, "cells": 0} for m in sorted(learners)}
    for target, methods in scores.items():
        seeds = sorted(next(iter(methods.values())))
        baselines = set(methods) - learners
        pooled = {
            m: {x: statistics.fmean(v for s in by_seed.values() for v in s[x]) for x in METRICS}
            for m, by_seed in methods.items()
        }
        print(f"\n### {target} (K = {k}; training seeds {seeds})\n")
        print("| method | OA, pooled | macro-F1, pooled | per-seed macro-F1 |")
        print("|---|---:|---:|---|")
        for m in sorted(pooled, key=lambda m: -pooled[m]["macro_f1"]):
            per_seed = ", ".join(
                f"{statistics.fmean(methods[m][s]['macro_f1']):.3f}" for s in seeds
            )
            name = f"**{m}**" if m in learners else m
            oa, f1 = (pooled[m][x] for x in METRICS)
            print(f"| {name} | {oa:.3f} | {f1:.3f} | {per_seed} |")
        print()
        for learner, count in tally.items():
            won = wins(pooled, learner, baselines)
            alone = 0
            for s in seeds:
                means = {
                    m: {x: statistics.fmean(methods[m][s][x]) for x in METRICS} for m in methods
                }
                alone += len(wins(means, learner, baselines)) == len(METRICS)
            print(f"{learner}, pooled: {verdict(won)}; both metrics in {alone} of "
                  f"{len(seeds)} seeds alone.")  # fmt: skip
            count["pooled"] += len(won) == len(METRICS)
            count["seeds"] += alone
            count["cells"] += len(seeds)
    print()
    for learner, count in tally.items():
        print(
            f"{learner} beats every baseline in both metrics on {count['pooled']} of "
            f"{len(scores)} targets pooled over the seeds, and in {count['seeds']} of "
            f"{count['cells']} (target, seed) runs alone."
        )


if __name__ == "__main__":
    main()
