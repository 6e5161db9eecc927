"""Score an adaptation on its query samples: the only step that reads the query's labels.

:func:`cropmeta.adapt.adapt.adapt` draws the support set, adapts and chooses from the labelled
support alone; :func:`score` then fits every competing method on that same support set (the
baselines, each method's transductive corrections) and measures them all on the region's other
labelled samples — what `adapt --shots` prints and `evaluate` records per draw."""

from __future__ import annotations

import numpy as np
import torch

from cropmeta.adapt.metrics import class_details, score_predictions
from cropmeta.adapt.predict import predict_methods, variants
from cropmeta.adapt.result import AdaptResult


def score(result: AdaptResult, transductive: bool = True) -> AdaptResult:
    """Fill ``result``'s query figures (metrics, per-class details, fitting times, the learner's
    query probabilities), every method fitted on its support set; with ``transductive`` each
    applicable ``<method>+<how>`` correction too (the query samples serve as the region's
    unlabelled data, their labels unread). A result without query samples (adapted on every
    label) is returned as it is."""
    fit = result.fitting
    if fit is None or not len(fit.query):
        return result
    kept = fit.query[np.isin(fit.data.codes[fit.query], fit.codes)]  # classes with a support
    to_index = {int(c): i for i, c in enumerate(fit.codes)}
    y_true = np.array([to_index[int(c)] for c in fit.data.codes[kept]])
    on = fit.support.replace(x_query=fit.x[kept])
    extend = variants(on, fit.unlabelled) if transductive and fit.unlabelled is not None else None
    run = predict_methods(
        fit.learner_model, fit.config, on, fit.sources, fit.baselines, fit.data.class_names,
        fit.seed, extend,
    )  # fmt: skip
    predictions = run.predictions
    result.query_proba = torch.from_numpy(run.proba[result.learner]).float()
    result.query_truth = y_true
    result.notes = run.notes | result.notes
    result.seconds |= run.seconds
    n = len(fit.codes)
    result.metrics = {name: score_predictions(y_true, p) for name, p in predictions.items()}
    result.details = {name: class_details(y_true, p, n) for name, p in predictions.items()}
    return result
