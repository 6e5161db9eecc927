"""What meta-training costs against transfer learning's pre-training, and what it buys.

Reads one or more `cropmeta evaluate` runs (their ``results.json``) and prints, per run and per
meta-trained model (learner × the sources of its folds):

* the wall time to the best meta-validation score (``history.val_seconds`` at the first best
  ``val_acc``; with ``init=pretrained`` the source pre-training it starts from is added), the
  whole meta-training's, and the supervised source pre-training's that the transfer baselines
  use (``history.transfer.seconds``, same sources, same process);
* their ratio (issue 21's target: time to best ≤ 2 × the pre-training);
* the meta-learner's overall accuracy / macro-F1 on the held-out targets at K, and the better
  transfer baseline's (``transfer_all`` or ``transfer_head``, by macro-F1) on the same draws: a
  cheaper meta-training that loses accuracy is no win.

Run the evaluations first, e.g. (gee-tsda; the demo world likewise with evaluate-demo.sh):
  OMP_NUM_THREADS=1 LEARNERS="maml anil protonet" SHOTS=5 SEEDS=3 OUT=/tmp/mc/default \
      bash pipelines/evaluate-gee-tsda.sh --no-transductive --no-automatic --workers 2
  ... OUT=/tmp/mc/patience ... --patience 2        (stop on a validation plateau)
  ... OUT=/tmp/mc/pretrained ... --init pretrained --patience 2
then: .venv/bin/python benchmarks/meta_cost.py /tmp/mc/default /tmp/mc/patience /tmp/mc/pretrained
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import fmean

TRANSFER = ("transfer_all", "transfer_head")


def time_to_best(history: dict) -> float | None:
    """Seconds from the start of meta-training to the end of its best validation (the first
    best: the loop keeps the first); None without validations or their times."""
    acc, seconds = history.get("val_acc") or [], history.get("val_seconds") or []
    if not acc or len(seconds) != len(acc):
        return None
    return seconds[acc.index(max(acc))]


def figures(runs: list[dict], targets: set[str], method: str, k: int) -> tuple[float, float]:
    """Mean overall accuracy and macro-F1 of ``method`` over the draws at K on ``targets``."""
    picked = [
        r["metrics"]
        for r in runs
        if r["method"] == method and r["shots"] == k and r["target"] in targets and "metrics" in r
    ]
    if not picked:
        return float("nan"), float("nan")
    return (
        fmean(m["overall_accuracy"] for m in picked),
        fmean(m["macro_f1"] for m in picked),
    )


def rows(folder: Path, k: int) -> list[str]:
    results = json.loads((folder / "results.json").read_text())
    runs, training = results["runs"], results["training"]
    by_sources: dict[tuple, list[str]] = {}
    for fold in results["folds"]:
        by_sources.setdefault(tuple(fold["sources"]), []).append(fold["target"])
    out = []
    for targets in by_sources.values():
        records = training[targets[0]]
        pre = next(
            (r["history"]["transfer"]["seconds"] for r in records.values()
             if "transfer" in r["history"]),
            None,
        )  # fmt: skip
        transfer = max((figures(runs, set(targets), m, k) for m in TRANSFER), key=lambda f: f[1])
        for learner, record in records.items():
            history = record["history"]
            best = time_to_best(history)
            if best is not None and history.get("init") == "pretrained" and pre:
                best += pre  # it started from that pre-training
            ratio = f"{best / pre:.2f}" if best is not None and pre else "–"
            iterations = history.get("stopped_early") or len(history.get("iteration", []))
            oa, f1 = figures(runs, set(targets), learner, k)
            out.append(
                f"| {folder.name} | {learner} | {history.get('init', 'random')} | {iterations} | "
                f"{best if best is not None else float('nan'):.1f} | {history['seconds']:.1f} | "
                f"{pre if pre else float('nan'):.1f} | {ratio} | {oa:.3f} / {f1:.3f} | "
                f"{transfer[0]:.3f} / {transfer[1]:.3f} |"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="evaluation output folders")
    parser.add_argument("--shots", type=int, default=5, help="K of the accuracy columns")
    args = parser.parse_args()
    print(
        "| run | learner | init | iterations | to best (s) | meta-training (s) | "
        f"pre-training (s) | ratio | learner OA / F1 (K={args.shots}) | transfer OA / F1 |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---|---|")
    for folder in args.runs:
        print("\n".join(rows(folder, args.shots)))


if __name__ == "__main__":
    main()
