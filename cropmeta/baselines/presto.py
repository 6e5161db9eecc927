"""Frozen Presto embeddings plus an ordinary classifier: the WorldCereal recipe as baselines.

ESA WorldCereal maps crops with Presto's pretrained encoder, frozen, and a classifier trained on
the reference labels (Tseng et al., 2023, "Lightweight, Pre-trained Transformers for Remote
Sensing Timeseries", arXiv:2304.14065, report Presto with a random forest and with logistic
regression on its embeddings). A crop mapper with no meta-learning would pick exactly this, so
the meta-learners must beat it:

* ``presto_forest`` — a random forest (the ``random_forest`` baseline's settings) on the
  embeddings;
* ``presto_linear`` — logistic regression (scikit-learn, L2, lbfgs) on the embeddings, held as
  a linear layer.

Both fit on the shots alone, or, given the source pool
(:class:`~cropmeta.baselines.pooled.SourcePool`), on the source samples of the target's classes
plus the shots, weighted as the pooled baselines weigh them (:meth:`SourcePool.with_shots`).
Inputs are what every baseline gets: series standardised with the meta-model's normaliser,
whose statistics the model keeps to undo it before Presto's own normalisation
(:mod:`cropmeta.models.presto_inputs`). The fitted model
(:class:`~cropmeta.models.presto_head.PrestoFeatureClassifier`) saves, loads and maps like the
others; its bundle stores the head only (Presto's weights ship with cropmeta). The target's
location comes from its samples' coordinates: :func:`region_latlon`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from cropmeta.baselines.pooled import SourcePool
from cropmeta.ingest.prepare import Normaliser
from cropmeta.models.forest import FOREST_TREES, fit_forest
from cropmeta.models.presto import EMBED
from cropmeta.models.presto_head import (
    InnerHead,
    PrestoFeatureClassifier,
    PrestoHeadConfig,
    PrestoLinearConfig,
)
from cropmeta.models.presto_inputs import PrestoFeatures, embed_in_batches
from cropmeta.tasks.task_info import region_info

#: Fits a head on embeddings (sample, 128), class indices and sample weights (None: equal);
#: returns its config and tensors.
HeadFit = Callable[[np.ndarray, np.ndarray, np.ndarray | None], tuple[InnerHead, dict]]


def presto_forest(
    x: torch.Tensor,
    y: torch.Tensor,
    doy: torch.Tensor,
    codes: list[int],
    bands: Sequence[str],
    normaliser: Normaliser,
    latlon: tuple[float, float] | None,
    seed: int,
    pool: SourcePool | None = None,
    trees: int = FOREST_TREES,
) -> PrestoFeatureClassifier:
    """A random forest (of ``trees`` trees) on frozen Presto embeddings of the shots ``x``
    (standardised by ``normaliser``; ``y`` their class index in ``codes``' order), plus the
    source ``pool``'s samples of those classes when given; ``latlon``: the target region's
    location."""

    def fit(emb: np.ndarray, labels: np.ndarray, weight: np.ndarray | None):
        forest = fit_forest(emb, labels, len(codes), seed, weight, trees)
        return forest.head.cfg, forest.head.state_dict()

    return _fit(x, y, doy, codes, bands, normaliser, latlon, pool, fit)


def presto_linear(
    x: torch.Tensor,
    y: torch.Tensor,
    doy: torch.Tensor,
    codes: list[int],
    bands: Sequence[str],
    normaliser: Normaliser,
    latlon: tuple[float, float] | None,
    seed: int,
    pool: SourcePool | None = None,
) -> PrestoFeatureClassifier:
    """Logistic regression on frozen Presto embeddings, as :func:`presto_forest` (same data)."""

    def fit(emb: np.ndarray, labels: np.ndarray, weight: np.ndarray | None):
        lr = LogisticRegression(max_iter=1000, random_state=seed)
        lr.fit(emb, labels, sample_weight=weight)
        return PrestoLinearConfig(classes=len(codes)), linear_layer(lr, len(codes))

    return _fit(x, y, doy, codes, bands, normaliser, latlon, pool, fit)


def linear_layer(lr: LogisticRegression, n_classes: int) -> dict[str, torch.Tensor]:
    """A fitted ``LogisticRegression``'s weight (class, 128) and bias (class,): the same class
    probabilities under a softmax. Two classes: sklearn's one row scores the second class, the
    first scores 0 (softmax of (0, s) is its sigmoid). A class absent from the fit gets bias
    −inf: probability 0, as a forest gives it."""
    weight = np.zeros((n_classes, EMBED))
    bias = np.full(n_classes, -np.inf)
    present = lr.classes_.astype(int)
    bias[present] = 0.0
    rows = present[1:] if lr.coef_.shape[0] == 1 else present
    weight[rows], bias[rows] = lr.coef_, lr.intercept_
    return {"weight": torch.from_numpy(weight).float(), "bias": torch.from_numpy(bias).float()}


def _fit(
    x: torch.Tensor,
    y: torch.Tensor,
    doy: torch.Tensor,
    codes: list[int],
    bands: Sequence[str],
    normaliser: Normaliser,
    latlon: tuple[float, float] | None,
    pool: SourcePool | None,
    fit: HeadFit,
) -> PrestoFeatureClassifier:
    """Embed the (pooled) samples once, fit the head on them, and wrap both as one model."""
    weight = None
    features = PrestoFeatures(bands, normaliser.mean, normaliser.std, latlon).eval()
    emb = embed_in_batches(features, x, doy)
    if pool is not None:  # the sources' embeddings are the same in every draw: computed once
        key = ("presto", tuple(bands), latlon, tuple(normaliser.mean), tuple(normaliser.std))
        if key not in pool.features:
            pool.features[key] = embed_in_batches(features, pool.x, doy)
        embedded = SourcePool(pool.features[key], pool.codes, pool.shot_weight)
        emb, y, w = embedded.with_shots(emb, y, codes)
        weight = None if bool((w == 1).all()) else w.numpy()
    inner, state = fit(emb.numpy(), y.numpy(), weight)
    cfg = PrestoHeadConfig(
        inner=inner,
        bands=list(bands),
        mean=normaliser.mean,
        std=normaliser.std,
        latlon=latlon,
    )
    model = PrestoFeatureClassifier(cfg, features)
    model.head.load_state_dict(state)
    return model.eval()


def region_latlon(path: str | Path) -> tuple[float, float] | None:
    """The (lat, lon) in degrees of the region dataset at ``path`` (its samples' spherical
    centroid, :func:`cropmeta.tasks.task_info.region_info`); None when it has no coordinates."""
    info = region_info(path)
    if info is None:
        return None
    x, y, z = (float(v) for v in info)
    return math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x))
