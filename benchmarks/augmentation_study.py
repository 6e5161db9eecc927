"""Simulated regions (task augmentation) on or off: two `cropmeta evaluate` runs side by side.

Reads the results.json of a run without and a run with ``--task-shift-days/--task-gain/
--task-offset`` (same catalog, learners, K and seed), prints per held-out region each learner's
overall accuracy and macro-F1 in both runs beside the best baseline, then the choice a user
would make without target labels: the (learner, augmentation) pair with the best
meta-validation accuracy over both runs, and whether it beats every baseline in both metrics.
Draws a PNG of the macro-F1 change per learner.

Run (the demo world, K = 5; the two evaluations take ≈ 12 min each on 2 cores):
  LEARNERS=all SHOTS=5 OUT=/tmp/aug/off bash pipelines/evaluate-demo.sh
  LEARNERS=all SHOTS=5 OUT=/tmp/aug/on bash pipelines/evaluate-demo.sh \\
      --task-shift-days 45 --task-gain 0.1 --task-offset 0.1
  .venv/bin/python benchmarks/augmentation_study.py /tmp/aug/off /tmp/aug/on --png study.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

METRICS = ("overall_accuracy", "macro_f1")


def load(folder: Path, shots: int) -> tuple[dict, dict, list[str]]:
    """(summary at K per target and method, best validation accuracy per learner, learners)."""
    results = json.loads((folder / "results.json").read_text())
    k = str(shots)
    summary = {
        t: {m: by_k[k] for m, by_k in methods.items() if k in by_k}
        for t, methods in results["summary"].items()
    }
    training = next(iter(results["training"].values()))  # every fold: the same sources
    val = {m: r["history"].get("best_val_acc") for m, r in training.items()}
    return summary, val, results["config"]["learners"]


def cell(entry: dict | None) -> str:
    if entry is None:
        return "–"
    return " / ".join(f"{entry[m]['mean']:.3f}" for m in METRICS)


def study(off: Path, on: Path, shots: int) -> tuple[str, dict]:
    (s_off, v_off, learners), (s_on, v_on, learners_on) = load(off, shots), load(on, shots)
    learners = [m for m in learners if m in learners_on]
    lines, deltas = [], {}
    candidates = {(m, "off"): v_off.get(m) for m in learners} | {
        (m, "on"): v_on.get(m) for m in learners
    }
    candidates = {c: v for c, v in candidates.items() if v is not None and v >= 0}
    chosen = max(candidates, key=candidates.get) if candidates else None
    for target in s_off:
        base = {m: e for m, e in s_off[target].items() if m not in learners}
        best = {x: max(base, key=lambda b: base[b][x]["mean"]) for x in METRICS}
        lines += [
            f"\n**{target}**, K = {shots} (OA / macro-F1; validation accuracy in brackets)\n",
            "| learner | off | simulated regions | Δ macro-F1 |",
            "|---|---:|---:|---:|",
        ]
        for m in learners:
            a, b = s_off[target].get(m), s_on[target].get(m)
            delta = b["macro_f1"]["mean"] - a["macro_f1"]["mean"] if a and b else float("nan")
            deltas.setdefault(target, {})[m] = delta
            lines.append(
                f"| {m} | {cell(a)} ({v_off.get(m, float('nan')):.3f}) | {cell(b)} "
                f"({v_on.get(m, float('nan')):.3f}) | {delta:+.3f} |"
            )
        for x in METRICS:
            lines.append(f"| best baseline, {x}: {best[x]} | {cell(base[best[x]])} | | |")
        if chosen is not None:
            m, setting = chosen
            ours = (s_off if setting == "off" else s_on)[target][m]
            wins = [x for x in METRICS if ours[x]["mean"] > base[best[x]][x]["mean"]]
            lines.append(
                f"\nChosen on meta-validation over both runs: **{m}** (simulated regions "
                f"{setting}, validation accuracy {candidates[chosen]:.3f}): {cell(ours)}, "
                + (
                    "above every baseline in both metrics."
                    if len(wins) == 2
                    else f"above every baseline in {', '.join(wins) or 'neither metric'}."
                )
            )
    return "\n".join(lines), deltas


def plot(deltas: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    targets = list(deltas)
    learners = list(next(iter(deltas.values())))
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / len(targets)
    for i, t in enumerate(targets):
        xs = np.arange(len(learners)) + (i - (len(targets) - 1) / 2) * width
        ax.bar(xs, [deltas[t][m] for m in learners], width, label=t)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(learners)), learners, rotation=30)
    ax.set_ylabel("Δ macro-F1 (simulated regions − off)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("off", type=Path, help="evaluate output folder, no augmentation")
    parser.add_argument("on", type=Path, help="evaluate output folder, with augmentation")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--png", type=Path, help="bar chart of the macro-F1 change")
    args = parser.parse_args()
    text, deltas = study(args.off, args.on, args.shots)
    print(text)
    if args.png:
        plot(deltas, args.png)
        print(f"\nplot: {args.png}")


if __name__ == "__main__":
    main()
