"""Human-readable views of results."""

from __future__ import annotations

from rich.table import Table

from cropmeta.adapt.adapt import AdaptResult


def metrics_table(result: AdaptResult) -> Table:
    """Methods side by side on the same query samples, best macro-F1 first; the meta-learner
    in bold, the baselines plain.

    The caption repeats the run's notes (a baseline omitted, or classes a baseline cannot
    predict), so a reader never compares figures without knowing what was held back.
    """
    caption = [f"fitted on {result.n_support} fields, scored on {result.n_query} others"]
    caption += [f"{name}: {note}" for name, note in result.notes.items()]
    table = Table(
        title=f"{result.region}: {len(result.classes)} classes, {result.shots} shots each",
        caption="\n".join(caption),
    )
    for col in ("method", "overall accuracy", "macro-F1", "kappa"):
        table.add_column(col, justify="left" if col == "method" else "right")
    ranked = sorted(result.metrics.items(), key=lambda kv: -kv[1]["macro_f1"])
    for name, m in ranked:
        table.add_row(
            name,
            f"{m['overall_accuracy']:.3f}",
            f"{m['macro_f1']:.3f}",
            f"{m['kappa']:.3f}",
            style="bold" if name == result.learner else None,
        )
    return table
