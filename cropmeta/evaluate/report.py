"""Human-readable views of results."""

from __future__ import annotations

from rich.table import Table

from cropmeta.adapt.adapt import AdaptResult


def metrics_table(result: AdaptResult) -> Table:
    """Methods side by side on the same query samples, best macro-F1 first."""
    table = Table(
        title=f"{result.region}: {len(result.classes)} classes, {result.shots} shots each",
        caption=f"fitted on {result.n_support} fields, scored on {result.n_query} others",
    )
    for col in ("method", "overall accuracy", "macro-F1", "kappa"):
        table.add_column(col, justify="left" if col == "method" else "right")
    ranked = sorted(result.metrics.items(), key=lambda kv: -kv[1]["macro_f1"])
    for name, m in ranked:
        table.add_row(
            name, f"{m['overall_accuracy']:.3f}", f"{m['macro_f1']:.3f}", f"{m['kappa']:.3f}"
        )
    return table
