"""Adapt several meta-trained models on the same labelled fields and save them as one ensemble.

`cropmeta adapt --model A --model B ...` (and `cropmeta evaluate --ensemble M`, which takes the
M learners with the best meta-validation accuracy): each model adapts with its own learner and
settings, the mean of their class probabilities is the ensemble's prediction
(:mod:`cropmeta.models.ensemble`), and the ensemble is scored beside each member and the
baselines on the same query samples.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cropmeta.adapt.adapt import AdaptResult, adapt, save
from cropmeta.adapt.metrics import class_details, score_predictions
from cropmeta.adapt.score import score
from cropmeta.errors import InputError
from cropmeta.models.bundle import ensemble_of, load_config, rebuild
from cropmeta.models.ensemble import mean_log_probability
from cropmeta.ownership import claim

#: The ensemble's entry in an adaptation's metrics (its members keep their learners' names).
ENSEMBLE = "ensemble"


def adapt_ensemble(
    model_dirs: list[str | Path],
    region: str | Path,
    out: str | Path | None = None,
    shots: int | None = None,
    seed: int = 0,
    baselines: bool = True,
    overwrite: bool = False,
) -> AdaptResult:
    """Adapt every model of ``model_dirs`` to ``region`` as :func:`adapt` does (the same
    support set: the same ``shots`` and ``seed``) and save the ensemble of the adapted models
    into ``out`` (None: keep it in memory, in the result). With ``shots``, the metrics hold the
    ensemble's, each member's and (the first model's bundle holding the source classifier)
    every baseline's."""
    if len(model_dirs) < 2:
        raise ValueError("an ensemble needs at least two meta-trained models")
    if out is not None:
        claim(out, "adapted-model", inputs=[*model_dirs, region], overwrite=overwrite)
    reference = load_config(model_dirs[0]).preparation
    for model_dir in model_dirs[1:]:  # refused before any adaptation
        if load_config(model_dir).preparation != reference:
            raise InputError(
                model_dir, f"prepared differently from {model_dirs[0]}: it cannot join its ensemble"
            )
    runs = [
        score(adapt(model_dir, region, shots, seed, baselines and i == 0))
        for i, model_dir in enumerate(model_dirs)
    ]
    members = [rebuild(run.model, run.config) for run in runs]  # as saved and loaded again
    names = member_names([run.learner for run in runs])
    first = runs[0]  # its bundle holds the source classifier the baselines use
    result = replace(first, model_dir=None, learner=ENSEMBLE, saved=ENSEMBLE)
    result.seconds = {ENSEMBLE: sum(run.seconds[run.learner] for run in runs)}
    result.seconds |= {k: v for k, v in first.seconds.items() if k != first.learner}
    if first.query_truth is not None:
        log_p = mean_log_probability([run.query_proba for run in runs])
        predicted, n = log_p.argmax(-1).numpy(), int(log_p.shape[1])
        base = [k for k in first.metrics if k != first.learner]
        result.metrics = {ENSEMBLE: score_predictions(first.query_truth, predicted)}
        result.details = {ENSEMBLE: class_details(first.query_truth, predicted, n)}
        for name, run in zip(names, runs, strict=True):
            result.metrics[name] = run.metrics[run.learner]
            result.details[name] = run.details[run.learner]
        result.metrics |= {k: first.metrics[k] for k in base}
        result.details |= {k: first.details[k] for k in base}
        result.query_proba = log_p.exp()
    result.model = ensemble_of(members, names)
    result.config = members[0][1].model_copy(
        update={"learner": {"algorithm": ENSEMBLE, "members": names}, "history": {}}
    )
    return result if out is None else save(result, out)


def member_names(learners: list[str]) -> list[str]:
    """Each member's name: its learner, numbered where two members share one."""
    return [
        f"{name}-{learners[:i].count(name) + 1}" if learners.count(name) > 1 else name
        for i, name in enumerate(learners)
    ]
