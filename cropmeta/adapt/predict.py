"""Every competing method's predictions on held-out samples: the adapted learner, the
baselines fitted on the same support set, and each method's transductive corrections. Serves
both the support cross-validation (:mod:`cropmeta.adapt.cross_validate`) and the query scoring
(:mod:`cropmeta.adapt.score`)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from cropmeta.adapt.names import TRANSDUCTIONS
from cropmeta.adapt.transductive import Unlabelled, applies, transduce, variant
from cropmeta.baselines.run import BaselineRun, Shots, Sources, baseline_predictions
from cropmeta.models.bundle import BundleConfig

#: a method's transductive variants, scored: (method name, its fitted model) → their run
Extend = Callable[[str, torch.nn.Module], BaselineRun]


def predict_methods(
    adapted: torch.nn.Module,
    cfg: BundleConfig,
    on: Shots,
    sources: Sources,
    baselines: bool,
    class_names: dict[int, str],
    seed: int,
    extend: Extend | None = None,
) -> BaselineRun:
    """Predictions and class probabilities of ``on.x_query`` by the adapted model and
    (``baselines``) by every baseline fitted on the same support set, each with its ``extend``
    variants (:func:`variants`); the notes on what a method could not do or found, and the
    fitting times."""
    learner = cfg.learner["algorithm"]
    run = BaselineRun()
    with torch.no_grad():
        run.add(learner, adapted(on.x_query, on.doy))
    if extend is not None:
        run.merge(extend(learner, adapted))
    if baselines:
        run.merge(baseline_predictions(on, cfg.encoder, seed, sources, class_names, extend))
    return run


def variants(on: Shots, data: Unlabelled) -> Extend:
    """``extend`` for :func:`predict_methods`: every transductive correction that applies to a
    fitted method, scored on the query samples."""

    def extend(method: str, model: torch.nn.Module) -> BaselineRun:
        run = BaselineRun()
        for how in TRANSDUCTIONS:
            if not applies(how, method, data):
                continue
            start = time.perf_counter()
            name = variant(method, how)
            corrected = transduce(how, method, model, on, data)
            with torch.no_grad():
                run.add(name, corrected(on.x_query, on.doy))
            run.seconds[name] = round(time.perf_counter() - start, 3)
            if name in data.notes:
                run.notes[name] = data.notes[name]
        return run

    return extend
