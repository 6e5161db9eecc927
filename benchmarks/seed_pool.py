"""Meta-learner against baselines over several training seeds: `cropmeta evaluate` runs pooled.

One `evaluate` run trains each model once: the meta-learner, and the source classifier behind
the transfer and source-only baselines. Its confidence intervals cover the support/query draws,
not the training. Training noise is large under a region shift: on demo world 6's Poltava,
source-only scored 0.811 OA with one torch thread and 0.670 with two, the same seed and data
(BENCHMARKS.md). This script pools runs that differ only in ``--seed`` (training seed and
draws): per target, every method's mean overall accuracy and macro-F1 over all (seed, draw)
pairs, the spread of its per-seed means, and whether the meta-learner beats every baseline in
both metrics pooled and in each seed alone. The runs must share every setting but the seed (the
script checks) and the world (it cannot: give one world's runs).

Run (three training seeds of one world, ANIL only, ≈ 1.5 min each at 1 thread):
  for S in 9 109 209; do OMP_NUM_THREADS=1 SEED=9 LEARNERS=anil SHOTS=5 OUT=/tmp/seeds/9-$S \\
      bash pipelines/evaluate-demo.sh --seed $S; done
  .venv/bin/python benchmarks/seed_pool.py /tmp/seeds/9-*
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

METRICS = ("overall_accuracy", "macro_f1")


def load(folder: Path, shots: int) -> tuple[int, dict, list[dict]]:
    """(training seed, protocol settings, the run's scored draws at K = ``shots``)."""
    results = json.loads((folder / "results.json").read_text())
    runs = [r for r in results["runs"] if "metrics" in r and r["shots"] == shots]
    return results["seed"], results["config"], runs


def wins(means: dict[str, dict[str, float]], learner: str) -> list[str]:
    """The metrics in which ``learner`` is above every other method."""
    others = [m for m in means if m != learner]
    return [k for k in METRICS if all(means[learner][k] > means[m][k] for m in others)]


def verdict(won: list[str]) -> str:
    if len(won) == len(METRICS):
        return "wins both"
    return f"wins {won[0]} only" if won else "loses both"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="evaluate output folders")
    parser.add_argument("--shots", type=int, default=5)
    args = parser.parse_args()
    # target -> method -> training seed -> metric -> values over the draws
    scores: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list))))
    learners, configs, seen = set(), [], set()
    for folder in args.folders:
        seed, config, runs = load(folder, args.shots)
        if configs and config != configs[0] or seed in seen:
            raise SystemExit(
                f"seed_pool.py: {folder}: not the first run's protocol with a new seed"
            )
        configs.append(config)
        seen.add(seed)
        for r in runs:
            for k in METRICS:
                scores[r["target"]][r["method"]][seed][k].append(r["metrics"][k])
            if r["learner"]:
                learners.add(r["method"])
    if len(learners) != 1:
        raise SystemExit(f"seed_pool.py: one meta-learner expected, found {sorted(learners)}")
    learner = learners.pop()
    tally = {"pooled": 0, "seeds": 0, "cells": 0}
    for target, methods in scores.items():
        seeds = sorted(next(iter(methods.values())))
        pooled = {
            m: {k: statistics.fmean(v for s in by_seed.values() for v in s[k]) for k in METRICS}
            for m, by_seed in methods.items()
        }
        print(f"\n### {target} (K = {args.shots}; training seeds {seeds})\n")
        print("| method | OA, pooled | macro-F1, pooled | per-seed macro-F1 |")
        print("|---|---:|---:|---|")
        for m in sorted(pooled, key=lambda m: -pooled[m]["macro_f1"]):
            per_seed = ", ".join(
                f"{statistics.fmean(methods[m][s]['macro_f1']):.3f}" for s in seeds
            )
            name = f"**{m}**" if m == learner else m
            oa, f1 = (pooled[m][k] for k in METRICS)
            print(f"| {name} | {oa:.3f} | {f1:.3f} | {per_seed} |")
        won = wins(pooled, learner)
        by_seed = []
        for s in seeds:
            means = {m: {k: statistics.fmean(methods[m][s][k]) for k in METRICS} for m in methods}
            by_seed.append(len(wins(means, learner)) == 2)
        print(f"\n{learner}, pooled: {verdict(won)}; both metrics in {sum(by_seed)} of "
              f"{len(seeds)} seeds alone.")  # fmt: skip
        tally["pooled"] += len(won) == 2
        tally["seeds"] += sum(by_seed)
        tally["cells"] += len(seeds)
    print(
        f"\n{learner} beats every baseline in both metrics on {tally['pooled']} of "
        f"{len(scores)} targets pooled over the seeds, and in {tally['seeds']} of "
        f"{tally['cells']} (target, seed) runs alone."
    )


if __name__ == "__main__":
    main()
