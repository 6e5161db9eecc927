"""`cropmeta evaluate --cv N`: what following `cropmeta adapt --cv N --method best` gives.

In production a user has no query set: `adapt --cv N --method best` cross-validates the
meta-learner and every baseline on the labelled fields and saves the method ranked first
(:mod:`cropmeta.adapt.cross_validate`). This section measures that protocol on the evaluation's
own draws at the headline K: on each draw, the learner chosen on meta-validation and every
baseline are cross-validated on the support set alone, and the pick's figures on the query set —
which the pick never sees — are set beside the chosen learner's and the baselines'.
"""

from __future__ import annotations

from pathlib import Path
from statistics import fmean

from cropmeta.adapt.adapt import adapt
from cropmeta.adapt.cross_validate import best_method
from cropmeta.adapt.score import score
from cropmeta.errors import InputError
from cropmeta.evaluate.outputs import Section
from cropmeta.evaluate.report import headline_shots, validation_pick
from cropmeta.models.forest import FOREST_TREES

METRICS = ("overall_accuracy", "macro_f1")


def cv_draws(results: dict, target: str, learner: str, k: int, folds: int) -> list[dict]:
    """Per draw of the protocol at K (its seeds): the CV's pick, every method's cross-validated
    and query figures. Draws that cannot be cross-validated are left out."""
    models = results["models"][target]
    first = results["config"]["learners"][0]  # the learner whose bundle holds the source model
    draws = []
    for s in range(results["config"]["seeds"]):
        seed = results["seed"] + s
        try:
            res = adapt(
                models[learner],
                results["regions"][target],
                shots=k,
                seed=seed,
                cv_folds=folds,
                source=models[first],
                forest_trees=results["config"].get("forest_trees", FOREST_TREES),
            )
        except InputError:  # a class with fewer labels than folds on this draw
            continue
        score(res, transductive=False)  # the pick is among the methods (corrections unranked)
        cv = {m: v for m, v in res.cv_metrics.items() if m in res.metrics}
        draws.append({"seed": seed, "pick": best_method(cv), "cv": cv, "query": res.metrics})
    return draws


def cv_section(results: dict, folds: int) -> Section:
    """The report's section on `adapt --cv FOLDS --method best` (see the module's docstring)."""

    def section(target: str, figures: Path) -> list[str]:
        summary = results["summary"].get(target, {})
        learners = [m for m in results["config"]["learners"] if m in summary]
        pick = validation_pick(results["training"].get(target, {}), learners)
        if pick is None:
            return []
        learner = pick[0]
        k = headline_shots(sorted(int(k) for k in summary[learner]))
        title = f"### Following `cropmeta adapt --cv {folds} --method best` (K = {k})"
        draws = cv_draws(results, target, learner, k, folds) if k >= folds else []
        results.setdefault("cv_choice", {})[target] = {
            "folds": folds,
            "shots": k,
            "learner": learner,
            "draws": draws,
        }
        if not draws:
            return [title, "", f"{k} labelled samples a class cannot fill {folds} folds.", ""]
        lines = [
            title,
            "",
            f"On each draw, {learner} (chosen on meta-validation) and every baseline were "
            f"cross-validated on the support set alone in {folds} folds; the method ranked first "
            "(by `--method best`'s criterion: the macro-F1, or, where the region's class shares "
            "could be estimated, the mean of the accuracy and macro-F1 weighted to them) is what "
            "`--method best` saves. Its query figures:",
            "",
            "| draw seed | CV's pick | its CV macro-F1 | query OA | query macro-F1 "
            "| query's best |",
            "|---:|---|---:|---:|---:|---|",
        ]
        for d in draws:
            p, q = d["pick"], d["query"][d["pick"]]
            lines.append(
                f"| {d['seed']} | {p} | {d['cv'][p]['macro_f1']:.3f} | "
                f"{q['overall_accuracy']:.3f} | {q['macro_f1']:.3f} | {best_method(d['query'])} |"
            )
        mean = {
            m: [fmean(d["query"][m][metric] for d in draws) for metric in METRICS]
            for m in draws[0]["query"]
        }
        followed = [fmean(d["query"][d["pick"]][metric] for d in draws) for metric in METRICS]
        baselines = [m for m in mean if m != learner]
        rival = max(baselines, key=lambda m: mean[m][1]) if baselines else None
        text = (
            f"Following the pick: overall accuracy {followed[0]:.3f}, macro-F1 {followed[1]:.3f} "
            f"(means of {len(draws)} draws), against {learner} {mean[learner][0]:.3f} / "
            f"{mean[learner][1]:.3f}"
        )
        if rival:
            text += f" and the best baseline in macro-F1, {rival}, {mean[rival][0]:.3f} / "
            text += f"{mean[rival][1]:.3f}"
        agree = sum(d["pick"] == best_method(d["query"]) for d in draws)
        text += f". The pick was the query's best method in {agree} of {len(draws)} draws."
        return [*lines, "", text, ""]

    return section
