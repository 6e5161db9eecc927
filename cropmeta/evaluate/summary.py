"""The report's opening: every method across the held-out regions, and what to save.

A reader with several held-out regions wants one table before the per-region detail: each
method's mean over the regions at each K, with a 95 % confidence interval over the regions
(the unit a new region is drawn from; over the draws when there is one region), the automatic
choice — what ``cropmeta adapt`` saves by default — marked, and the classes each region was
scored on (a class with too few labelled fields for K is dropped from that K's draws).
"""

from __future__ import annotations

from statistics import fmean

from cropmeta.adapt.names import BEST
from cropmeta.evaluate.protocol import RANGE, confidence

SHOWN = ("overall_accuracy", "macro_f1")


def _ci(entry: dict) -> str:
    if entry["n"] < 2:
        return f"{entry['mean']:.3f}"
    return f"{entry['mean']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def across_targets(results: dict, k: int) -> dict[str, dict[str, dict]]:
    """``method → metric → mean and CI`` at K over the targets' means (over the draws when
    one target), for the methods scored on every target at K."""
    runs = [r for r in results["runs"] if "metrics" in r and r["shots"] == k]
    targets = sorted({r["target"] for r in runs})
    by: dict[str, dict[str, list[dict]]] = {}
    for r in runs:
        by.setdefault(r["method"], {}).setdefault(r["target"], []).append(r)
    out = {}
    for method, per_target in by.items():
        if sorted(per_target) != targets:
            continue
        out[method] = {}
        for metric in SHOWN:
            if len(targets) > 1:
                values = [fmean(r["metrics"][metric] for r in rs) for rs in per_target.values()]
            else:
                values = [r["metrics"][metric] for r in per_target[targets[0]]]
            out[method][metric] = confidence(values, RANGE[metric])
    return out


def summary_lines(results: dict) -> list[str]:
    """Markdown: per K, every method's mean over the targets (best macro-F1 first), the
    automatic choice's row marked and how it compares; then the classes scored per target."""
    runs = [r for r in results["runs"] if "metrics" in r]
    if not runs:
        return []
    targets = sorted({r["target"] for r in runs})
    over = "targets" if len(targets) > 1 else "draws"
    lines = ["## Summary across the held-out regions", ""]
    for k in sorted({r["shots"] for r in runs}):
        table = across_targets(results, k)
        if not table:
            continue
        rows = sorted(table, key=lambda m: -table[m]["macro_f1"]["mean"])
        lines += [
            f"K = {k}: mean over {len(targets)} region(s) [95 % CI over the {over}].",
            "",
            "| method | overall accuracy | macro-F1 |",
            "|---|---:|---:|",
        ]
        for m in rows:
            name = f"**{m}** (automatic choice: `cropmeta adapt`)" if m == BEST else m
            lines.append(f"| {name} | {_ci(table[m]['overall_accuracy'])} | "
                         f"{_ci(table[m]['macro_f1'])} |")  # fmt: skip
        lines += ["", verdict(table, k), ""]
    lines += classes_lines(results)
    return lines


def verdict(table: dict[str, dict[str, dict]], k: int) -> str:
    """Which method to save at K: the automatic choice unless another method is above it in
    both metrics by more than their intervals' overlap allows."""
    if BEST not in table:
        return f"At K = {k} the automatic choice could not be scored (K < 2)."
    ours = table[BEST]
    above = [
        m
        for m in table
        if m != BEST
        and all(
            table[m][metric]["mean"] > ours[metric]["mean"]
            and (ours[metric]["n"] < 2 or table[m][metric]["low"] > ours[metric]["high"])
            for metric in SHOWN
        )
    ]
    text = (
        f"At K = {k}, `cropmeta adapt` (the automatic choice) scores "
        f"{_ci(ours['overall_accuracy'])} OA / {_ci(ours['macro_f1'])} macro-F1"
    )
    if above:
        best = max(above, key=lambda m: table[m]["macro_f1"]["mean"])
        return text + (
            f"; **{best}** is clearly above it in both metrics: save it with "
            f"`cropmeta adapt --method {best.replace('+', ' --transductive ')}`."
        )
    leader = max(table, key=lambda m: table[m]["macro_f1"]["mean"])
    if leader == BEST:
        return text + ": the best macro-F1 of every method; save it (`cropmeta adapt`)."
    return text + (
        f"; no method is clearly above it in both metrics (the best macro-F1 is {leader}'s): "
        "save the automatic choice."
    )


def classes_lines(results: dict) -> list[str]:
    """Per target: the classes scored, and per K those dropped for too few labelled fields."""
    lines = ["Classes scored per held-out region (a class with at most K labelled fields "
             "cannot fill a support set and a query, and is dropped at that K):", ""]  # fmt: skip
    for target in sorted({r["target"] for r in results["runs"] if "metrics" in r}):
        runs = [r for r in results["runs"] if r["target"] == target and "metrics" in r]
        scored = sorted({c for r in runs for c in r["classes"]})
        dropped = {
            r["shots"]: sorted(r.get("skipped_classes", []))
            for r in runs
            if r.get("skipped_classes")
        }
        text = f"- {target}: {', '.join(scored)}"
        if dropped:
            text += "; dropped: " + "; ".join(
                f"K = {k}: {', '.join(names)}" for k, names in sorted(dropped.items())
            )
        lines.append(text)
    return [*lines, ""]
