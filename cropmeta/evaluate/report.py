"""Human-readable views of results."""

from __future__ import annotations

from rich.table import Table

from cropmeta.adapt.adapt import AdaptResult
from cropmeta.adapt.cross_validate import criterion
from cropmeta.adapt.ensemble import ENSEMBLE


def metrics_table(result: AdaptResult, cross_validated: bool = False) -> Table:
    """Methods side by side on the same query samples, best first (macro-F1; cross-validated
    with the region's class shares: ``--method best``'s weighted criterion); the meta-learner
    in bold, the baselines plain. ``cross_validated``: the same for the out-of-fold predictions
    of the support set (``result.cv_metrics``).

    The caption repeats the run's notes (a baseline omitted, or classes a baseline cannot
    predict), so a reader never compares figures without knowing what was held back.
    """
    if cross_validated:
        title = f"{result.region}: cross-validated on the {result.n_support} labelled fields"
        caption = [
            f"{result.cv_folds} stratified folds: each method fitted on all but one; "
            "± a bootstrap standard error"
        ]
        metrics = result.cv_metrics
    else:
        title = f"{result.region}: {len(result.classes)} classes, {result.shots} shots each"
        caption = [f"fitted on {result.n_support} fields, scored on {result.n_query} others"]
        metrics = result.metrics
    weighted = cross_validated and result.class_prior is not None
    if weighted:
        pairs = zip(result.classes, result.class_prior, strict=True)
        shares = ", ".join(f"{c} {p:.2f}" for c, p in pairs)
        caption.append(
            f"weighted: each field weighted to the region's estimated class shares ({shares}); "
            "--method best ranks by their mean"
        )
    caption += [f"{name}: {note}" for name, note in result.notes.items()]
    table = Table(title=title, caption="\n".join(caption))
    columns = ["method", "overall accuracy", "macro-F1", "kappa"]
    columns += ["weighted accuracy", "weighted macro-F1"] if weighted else []
    for col in columns:
        table.add_column(col, justify="left" if col == "method" else "right")
    ranked = sorted(metrics.items(), key=lambda kv: -criterion(kv[1]))
    for name, m in ranked:
        se = f" ± {m['macro_f1_se']:.3f}" if "macro_f1_se" in m else ""
        row = [name, f"{m['overall_accuracy']:.3f}", f"{m['macro_f1']:.3f}{se}"]
        row.append(f"{m['kappa']:.3f}")
        if weighted:
            row += [f"{m['weighted_accuracy']:.3f}", f"{m['weighted_macro_f1']:.3f}"]
        table.add_row(*row, style="bold" if name == result.learner else None)
    return table


def _ci(entry: dict) -> str:
    if entry["n"] < 2:
        return f"{entry['mean']:.3f}"
    return f"{entry['mean']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def headline_shots(shots: list[int]) -> int:
    """The K a report leads with: 5 when evaluated (the usual few-shot budget), else the
    largest K below it, else the smallest."""
    return 5 if 5 in shots else max([k for k in shots if k < 5], default=min(shots))


def results_table(summary: dict, learners: list[str], k: int) -> list[str]:
    """Markdown table of every method at K (mean [95 % CI]), best macro-F1 first."""
    rows = [(method, by_k[str(k)]) for method, by_k in summary.items() if str(k) in by_k]
    rows.sort(key=lambda r: -r[1]["macro_f1"]["mean"])
    lines = [
        "| method | overall accuracy | macro-F1 | kappa | adaptation s |",
        "|---|---:|---:|---:|---:|",
    ]
    for method, e in rows:
        name = f"**{method}**" if method in learners else method
        cells = [_ci(e["overall_accuracy"]), _ci(e["macro_f1"]), _ci(e["kappa"])]
        lines.append(f"| {name} | {' | '.join(cells)} | {e['seconds']:.2f} |")
    return lines


def recommendation(summary: dict, learners: list[str], k: int) -> str:
    """Plain language: the best learner and the best baseline at K, and whether the gap is
    larger than the confidence intervals."""
    at_k = {m: by_k[str(k)] for m, by_k in summary.items() if str(k) in by_k}
    ours = [m for m in at_k if m in learners]
    base = [m for m in at_k if m not in learners]
    if not ours:
        return "No learner could be scored at this K."
    best = max(ours, key=lambda m: at_k[m]["macro_f1"]["mean"])
    f1 = at_k[best]["macro_f1"]
    text = f"With K = {k} labelled samples per class, the best learner is **{best}** "
    text += f"(macro-F1 {_ci(f1)})"
    if not base:
        return text + "."
    rival = max(base, key=lambda m: at_k[m]["macro_f1"]["mean"])
    r = at_k[rival]["macro_f1"]
    text += f"; the best baseline is **{rival}** ({_ci(r)}). "
    if f1["n"] < 2:
        return text + "One draw only: no confidence interval, so no verdict (use more seeds)."
    if f1["low"] > r["high"]:
        how = " (`cropmeta adapt` with one `--model` per member)" if best == ENSEMBLE else ""
        return text + f"{best} is clearly better: use it{how}."
    if f1["high"] < r["low"]:
        return text + (
            f"{rival} is clearly better: meta-learning does not pay off here "
            f"(`cropmeta adapt --method {rival}` saves it as the model to map)."
        )
    return text + "Their confidence intervals overlap: no clear winner at this K."


def scored_learners(results: dict) -> list[str]:
    """The meta-learners of an evaluation's results, and its ensemble of them when it has one:
    every method that is not a baseline."""
    return [*results["config"]["learners"], *([ENSEMBLE] if results.get("ensembles") else [])]


def validation_ranking(training: dict, learners: list[str]) -> list[tuple[str, float]]:
    """``learners`` with meta-validation scores, best first, with their accuracy (``training``:
    learner → its record with the meta-training ``history``); ties keep the given order."""
    scored = {m: training[m]["history"].get("best_val_acc") for m in learners if m in training}
    scored = {m: acc for m, acc in scored.items() if acc is not None and acc >= 0}
    return sorted(scored.items(), key=lambda kv: -kv[1])


def validation_pick(training: dict, learners: list[str]) -> tuple[str, float] | None:
    """The learner with the best meta-validation accuracy among ``learners``, and that
    accuracy; None when none has validation scores."""
    ranking = validation_ranking(training, learners)
    return ranking[0] if ranking else None


def validation_choice(summary: dict, training: dict, learners: list[str], k: int) -> str:
    """The learner a user would pick without any target label — the best meta-validation
    accuracy (tasks from held-out samples, or held-out regions, of the sources) — and how it
    fares at K against the best baseline in both metrics: the honest counterpart of picking on
    the target's scores."""
    at_k = {m: by_k[str(k)] for m, by_k in summary.items() if str(k) in by_k}
    pick = validation_pick(training, [m for m in learners if m in at_k])
    if pick is None:
        return (
            "No learner has meta-validation scores (the sources' held-out samples are too few "
            "for validation tasks), so none can be chosen without the target's labels."
        )
    chosen, accuracy = pick
    ours = at_k[chosen]
    text = (
        f"Chosen without the target's labels (best meta-validation accuracy, "
        f"{accuracy:.3f}): **{chosen}**, macro-F1 {_ci(ours['macro_f1'])}, overall "
        f"accuracy {_ci(ours['overall_accuracy'])}"
    )
    return text + against_baselines(ours, at_k, learners)


def against_baselines(ours: dict, at_k: dict, learners: list[str]) -> str:
    """ ": above every baseline in both metrics (means of the draws)." and the like: how the
    summary entry ``ours`` compares with every method of ``at_k`` not in ``learners``."""
    base = [m for m in at_k if m not in learners]
    if not base:
        return "."
    wins = [
        metric
        for metric in ("macro_f1", "overall_accuracy")
        if all(ours[metric]["mean"] > at_k[b][metric]["mean"] for b in base)
    ]
    verdict = {
        2: "above every baseline in both metrics",
        1: f"above every baseline in {'macro-F1' if 'macro_f1' in wins else 'overall accuracy'} "
        "only",
        0: "not above every baseline in either metric",
    }[len(wins)]
    return f": {verdict} (means of the draws)."


def ensemble_line(summary: dict, members: list[str], learners: list[str], k: int) -> str:
    """The ensemble of the best-validated learners (chosen without target labels as well) at K,
    against the baselines."""
    ours = summary.get(ENSEMBLE, {}).get(str(k))
    if not members or ours is None:
        return ""
    at_k = {m: by_k[str(k)] for m, by_k in summary.items() if str(k) in by_k}
    text = (
        f"Ensemble of the {len(members)} best-validated learners ({', '.join(members)}; the mean "
        f"of their class probabilities): macro-F1 {_ci(ours['macro_f1'])}, overall accuracy "
        f"{_ci(ours['overall_accuracy'])}"
    )
    return text + against_baselines(ours, at_k, learners)
