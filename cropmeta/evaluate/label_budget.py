"""Does labelling the fields `cropmeta suggest-labels` proposes beat labelling random ones?

Measured on a labelled region dataset at the same budget: the criterion of
:mod:`cropmeta.mapping.suggest` chooses from the meta-model's embedding alone (labels unseen),
random choice draws uniformly; the meta-model adapts on each choice and is scored on the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cropmeta.errors import InputError
from cropmeta.ingest.prepare import incompatibility
from cropmeta.mapping.suggest import (
    METHODS,
    embed_series,
    load_meta_model,
    select_fields,
)
from cropmeta.models.bundle import build_model, load_bundle, load_config


def _adapt_and_score(
    model_dir: Path,
    codes: np.ndarray,
    x: torch.Tensor,
    doy: torch.Tensor,
    support: np.ndarray,
    info: torch.Tensor | None,
    seed: int,
) -> dict:
    """Adapt a fresh copy of the meta-model on ``support`` (public API only, as
    ``adapt_region`` does) and score it on every other sample of the region."""
    from cropmeta.adapt.metrics import score_predictions
    from cropmeta.learners.registry import build_learner

    query = np.setdiff1d(np.arange(len(codes)), support)
    classes = np.unique(codes[support])
    if len(classes) == 1:  # nothing to tell apart: every query gets the one known class
        pred = np.full(len(query), classes[0])
    else:
        cfg = load_config(model_dir)
        learner = build_learner(cfg.learner["algorithm"], cfg.learner)
        learner.setup(build_model(cfg))
        model, _ = load_bundle(model_dir, learner.state)
        to_index = {int(c): i for i, c in enumerate(classes)}
        y = torch.tensor([to_index[int(c)] for c in codes[support]])
        torch.manual_seed(seed)
        known = torch.from_numpy(classes.astype(np.int64))
        adapted = learner.adapt(model, x[support], y, doy, len(classes), info=info, codes=known)
        with torch.no_grad():
            pred = classes[adapted(x[query], doy).argmax(-1).numpy()]
    return score_predictions(codes[query], pred) | {
        "classes_covered": len(classes),
        "n_query": len(query),
        "indices": [int(i) for i in support],
    }


def compare_with_random(
    model_dir: str | Path,
    region_dataset_path: str | Path,
    budget: int,
    seeds: Sequence[int] = (0, 1, 2),
    method: str = "kcenter",
) -> dict:
    """Does labelling the criterion's ``budget`` samples beat labelling ``budget`` random ones?

    On a *labelled* region dataset (``cropmeta preprocess`` output), per seed: the criterion
    picks ``budget`` samples from the meta-model's embedding alone (labels unseen), and
    ``budget`` samples are drawn uniformly at random (``numpy.random.default_rng(seed)``).
    The meta-model is adapted on each choice with its learner's own ``adapt`` (same torch seed
    for both) and scored with :func:`cropmeta.adapt.metrics.score_predictions` on all the region's
    *other* samples (so each choice is scored on its own complement). A class that the chosen
    samples do not contain cannot be predicted: its query samples count as errors (OA and
    kappa) and its F1 is 0 (macro-F1 averages over every class present in the query). A
    choice of a single class predicts that class everywhere.

    Returns ``{"region", "method", "budget", "n_samples", "n_classes", "seeds", "runs":
    [{"seed", "criterion": {...}, "random": {...}}], "mean": {"criterion": {...}, "random":
    {...}}, "difference": {...}}``; each ``{...}`` holds ``overall_accuracy``, ``macro_f1``,
    ``kappa`` and ``classes_covered`` (runs also ``n_query`` and the chosen ``indices``);
    ``difference`` is criterion minus random of the means.
    """
    from cropmeta.ingest.dataset import RegionArrays
    from cropmeta.tasks.task_info import region_info

    if method not in METHODS:
        raise InputError("method", f"unknown method {method!r} (known: {', '.join(METHODS)})")
    if not seeds:
        raise InputError("seeds", "give at least one seed")
    model_dir = Path(model_dir)
    model, cfg = load_meta_model(model_dir)
    data = RegionArrays.load(region_dataset_path, require_labels=True)
    if reason := incompatibility(data.preparation, cfg.preparation):
        raise InputError(
            region_dataset_path, f"prepared differently from the model's training data: {reason}"
        )
    n = len(data.codes)
    if not 1 <= budget < n:
        raise InputError(
            region_dataset_path,
            f"budget {budget} outside 1..{n - 1} (the dataset has {n} "
            "samples and at least one must remain to score)",
        )
    z = embed_series(model, cfg, data.x)
    x = torch.from_numpy(cfg.normaliser(data.x))
    doy = torch.from_numpy(cfg.preparation.grid.doys()).long()
    info = region_info(region_dataset_path)  # the target's location, for TIML
    info = None if info is None else torch.from_numpy(info)
    runs = []
    for seed in seeds:
        picks = {
            "criterion": select_fields(z, budget, int(seed), method).order,
            "random": np.sort(np.random.default_rng(int(seed)).choice(n, budget, replace=False)),
        }
        runs.append(
            {"seed": int(seed)}
            | {
                name: _adapt_and_score(model_dir, data.codes, x, doy, idx, info, int(seed))
                for name, idx in picks.items()
            }
        )
    keys = ("overall_accuracy", "macro_f1", "kappa", "classes_covered")
    mean = {
        name: {k: float(np.mean([r[name][k] for r in runs])) for k in keys}
        for name in ("criterion", "random")
    }
    return {
        "region": data.name,
        "method": method,
        "budget": int(budget),
        "n_samples": int(n),
        "n_classes": int(len(np.unique(data.codes))),
        "seeds": [int(s) for s in seeds],
        "runs": runs,
        "mean": mean,
        "difference": {k: mean["criterion"][k] - mean["random"][k] for k in keys},
    }
