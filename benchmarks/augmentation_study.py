"""Meta-learner variants chosen on meta-validation: several `cropmeta evaluate` runs side by side.

Each run is one setting of meta-training for every learner in it (simulated regions off or on;
shared or class heads, ...) on the same catalog, K and seed. Prints per held-out region each
learner's overall accuracy and macro-F1 in every run beside the best baseline, then the choice a
user would make without target labels: the (learner, run) pair with the best meta-validation
accuracy over all runs, and whether it beats every baseline in both metrics. With runs labelled
``off`` and ``on`` (the default labels of two unlabelled folders) it adds the macro-F1 change
and draws it as a PNG.

Run (the demo world, K = 5; the two evaluations take ≈ 12 min each on 2 cores):
  LEARNERS=all SHOTS=5 OUT=/tmp/aug/off bash pipelines/evaluate-demo.sh
  LEARNERS=all SHOTS=5 OUT=/tmp/aug/on bash pipelines/evaluate-demo.sh \\
      --task-shift-days 45 --task-gain 0.1 --task-offset 0.1
  .venv/bin/python benchmarks/augmentation_study.py /tmp/aug/off /tmp/aug/on --png study.png
More runs are named LABEL=FOLDER, e.g. ``off=/tmp/a on=/tmp/b classes=/tmp/c``
(pipelines/study-simulated-regions.sh with HEADS="shared classes").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cropmeta.evaluate.report import scored_learners

METRICS = ("overall_accuracy", "macro_f1")


def validation_queries(folder: Path) -> int:
    """Query samples in a run's validation tasks, at most (fewer classes where held-out source
    samples cannot fill the training tasks' shape)."""
    meta = json.loads((folder / "results.json").read_text())["config"]["meta"]
    return meta["val_tasks"] * meta["n_way"] * min(meta["q_query"], 5)


def near_ties(candidates: dict, n: int) -> list:
    """Candidates within one binomial standard error (of ``n`` queries) of the best."""
    best = max(candidates.values())
    se = (best * (1 - best) / n) ** 0.5
    return [c for c, v in sorted(candidates.items(), key=lambda i: -i[1]) if v >= best - se]


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
    return summary, val, scored_learners(results)


def cell(entry: dict | None) -> str:
    if entry is None:
        return "–"
    return " / ".join(f"{entry[m]['mean']:.3f}" for m in METRICS)


def _wins(entry: dict, base: dict, best: dict) -> list[str]:
    """The metrics in which ``entry`` is above every baseline."""
    return [x for x in METRICS if entry[x]["mean"] > base[best[x]][x]["mean"]]


def _means(entry: dict | None) -> tuple | None:
    return None if entry is None else tuple(entry[m]["mean"] for m in METRICS)


def study(runs: dict[str, Path], loaded: dict, shots: int) -> tuple[str, dict]:
    """The report's Markdown and, with runs ``off`` and ``on``, the macro-F1 changes
    (``loaded``: each run's :func:`load`)."""
    summaries = {label: s for label, (s, _, _) in loaded.items()}
    vals = {label: v for label, (_, v, _) in loaded.items()}
    first = next(iter(loaded.values()))
    learners = list(dict.fromkeys(m for _, _, ls in loaded.values() for m in ls))
    candidates = {
        (m, label): v
        for label, (_, val, names) in loaded.items()
        for m, v in val.items()
        if m in names and v is not None and v >= 0
    }
    chosen = max(candidates, key=candidates.get) if candidates else None
    paired = "off" in runs and "on" in runs
    ties = near_ties(candidates, validation_queries(next(iter(runs.values())))) if chosen else []
    lines, deltas = [], {}
    for target in first[0]:
        base = {m: e for m, e in first[0][target].items() if m not in learners}
        for label, summary in summaries.items():  # the same draws, seeds and threads give these
            if any(_means(summary[target].get(b)) != _means(e) for b, e in base.items()):
                lines.append(f"\n(note: run {label} has other baseline figures on {target})")
        best = {x: max(base, key=lambda b: base[b][x]["mean"]) for x in METRICS}
        lines += [
            f"\n**{target}**, K = {shots} (OA / macro-F1; validation accuracy in brackets)\n",
            "| learner | " + " | ".join(runs) + (" | Δ macro-F1 |" if paired else " |"),
            "|---|" + "---:|" * (len(runs) + paired),
        ]
        for m in learners:
            cells = [
                f"{cell(summaries[r][target].get(m))} ({vals[r].get(m, float('nan')):.3f})"
                if m in loaded[r][2]
                else "–"
                for r in runs
            ]
            if paired:
                a, b = (summaries[r][target].get(m) for r in ("off", "on"))
                delta = b["macro_f1"]["mean"] - a["macro_f1"]["mean"] if a and b else float("nan")
                deltas.setdefault(target, {})[m] = delta
                cells.append(f"{delta:+.3f}")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        for x in METRICS:
            pad = " |" * (len(runs) - 1 + paired)
            lines.append(f"| best baseline, {x}: {best[x]} | {cell(base[best[x]])} |{pad}")
        if chosen is not None:
            m, label = chosen
            ours = summaries[label][target][m]
            wins = _wins(ours, base, best)
            lines.append(
                f"\nChosen on meta-validation over all runs: **{m}** ({label}, validation "
                f"accuracy {candidates[chosen]:.3f}): {cell(ours)}, "
                + (
                    "above every baseline in both metrics."
                    if len(wins) == 2
                    else f"above every baseline in {', '.join(wins) or 'neither metric'}."
                )
            )
            if len(ties) > 1:  # validation cannot tell these apart
                tied = [(m, label, summaries[label][target][m]) for m, label in ties]
                lines.append(
                    "Within one standard error of its validation accuracy: "
                    + ", ".join(
                        f"{m} ({label}) {cell(e)}"
                        + (" wins both" if len(_wins(e, base, best)) == 2 else "")
                        for m, label, e in tied
                    )
                    + "."
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


def plot_runs(loaded: dict, shots: int, path: Path) -> None:
    """Macro-F1 of every learner in every run, one panel per target, the best baseline dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runs = list(loaded)
    learners = list(dict.fromkeys(m for _, _, ls in loaded.values() for m in ls))
    targets = list(next(iter(loaded.values()))[0])
    fig, axes = plt.subplots(len(targets), 1, figsize=(10, 3.2 * len(targets)), squeeze=False)
    width = 0.8 / len(runs)
    for ax, target in zip(axes[:, 0], targets, strict=True):
        first = next(iter(loaded.values()))[0][target]
        base = max(e["macro_f1"]["mean"] for m, e in first.items() if m not in learners)
        for i, (label, (summary, _, names)) in enumerate(loaded.items()):
            xs = np.arange(len(learners)) + (i - (len(runs) - 1) / 2) * width
            f1 = [
                summary[target][m]["macro_f1"]["mean"] if m in names else np.nan for m in learners
            ]
            ax.bar(xs, f1, width, label=label)
        ax.axhline(base, color="k", ls="--", lw=1, label="best baseline")
        ax.set_xticks(np.arange(len(learners)), learners, rotation=30)
        ax.set_ylabel("macro-F1")
        ax.set_ylim(max(0.0, base - 0.3), min(1.0, base + 0.2))
        ax.set_title(f"{target}, K = {shots}")
    axes[0, 0].legend(ncol=len(runs) + 1, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_runs(items: list[str]) -> dict[str, Path]:
    """``LABEL=FOLDER`` items; two bare folders are the runs ``off`` and ``on``."""
    if len(items) == 2 and not any("=" in i for i in items):
        return {"off": Path(items[0]), "on": Path(items[1])}
    runs = {}
    for item in items:
        label, sep, folder = item.partition("=")
        if not sep:
            raise SystemExit(f"{item}: expected LABEL=FOLDER (or exactly two folders: off, on)")
        runs[label] = Path(folder)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=FOLDER of `cropmeta evaluate` outputs")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument(
        "--png", type=Path, help="bar chart: the macro-F1 change (off → on), or each run's"
    )
    args = parser.parse_args()
    runs = parse_runs(args.runs)
    loaded = {label: load(folder, args.shots) for label, folder in runs.items()}
    text, deltas = study(runs, loaded, args.shots)
    print(text)
    if args.png and len(runs) == 2 and deltas:
        plot(deltas, args.png)
    elif args.png:
        plot_runs(loaded, args.shots, args.png)
    if args.png:
        print(f"\nplot: {args.png}")


if __name__ == "__main__":
    main()
