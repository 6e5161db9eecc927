"""What a practitioner with the sources' labels fits first: the source samples plus the shots.

A user adapting to a new region still has every labelled sample of the source regions. The
first thing an analyst does with them is to pool them with the few local fields and fit an
ordinary classifier — and on real held-out regions that beats shots-only methods by a wide
margin (issue 18: a plain random forest on sources + 5 shots per class, 0.85 overall accuracy
against 0.72 for the same forest on the shots alone). Three such baselines:

* ``pooled_forest`` — a random forest (scikit-learn) on the pooled flattened series;
* ``pooled_boosting`` — histogram gradient boosting (scikit-learn, early-stopped) on the same
  data;
* ``transfer_pooled`` — the source classifier (:mod:`.transfer`) fine-tuned on the pooled
  samples: a head over the target's classes, then every layer (LP-FT), with weighted
  cross-entropy.

The source samples come from the meta-model bundle: meta-training stores the sources' series
and codes as ``sources.*`` tensors (at most ``source_samples`` of them, a stratified random
subset), so adaptation needs no access to the source datasets. Only source samples of the
target's classes are pooled (a class the target does not have would only be a wrong answer).
Each shot weighs ``shot_weight`` source samples (1: plain pooling), the one setting; both
forests are held as tensors (:mod:`cropmeta.models.forest`) and map like the networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier

from cropmeta.baselines.transfer import FineTuneConfig, fine_tune_all
from cropmeta.ingest.prepare import Normaliser
from cropmeta.learners.pretrain import SOURCES, Pretrained
from cropmeta.models.bundle import Bundle, load_part
from cropmeta.models.classifier import CropClassifier
from cropmeta.models.forest import FOREST_TREES, ForestClassifier, fit_forest


@dataclass
class SourcePool:
    """The stored source samples, standardised as the model's inputs, and the weight of a shot
    against one of them."""

    x: torch.Tensor
    codes: np.ndarray
    shot_weight: float = 1.0
    #: features of ``x`` computed once for every draw (frozen Presto embeddings), by key
    features: dict = field(default_factory=dict, repr=False)

    def with_shots(
        self,
        x_shots: torch.Tensor,
        y_shots: torch.Tensor,
        target_codes: list[int],
        weight: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The source samples of the target's classes then the shots: series, class index (the
        order of ``target_codes``) and sample weight (a shot's, times its ``weight``)."""
        index = {c: i for i, c in enumerate(target_codes)}
        mine = np.isin(self.codes, target_codes)
        y_src = torch.tensor([index[int(c)] for c in self.codes[mine]], dtype=torch.long)
        x = torch.cat([self.x[torch.from_numpy(mine)], x_shots])
        y = torch.cat([y_src, y_shots])
        w_shots = torch.full((len(y_shots),), self.shot_weight)
        if weight is not None:
            w_shots = w_shots * weight
        w = torch.cat([torch.ones(len(y_src)), w_shots])
        return x, y, w


def load_pool(
    model_dir: str | Path | Bundle, normaliser: Normaliser, shot_weight: float = 1.0
) -> SourcePool | None:
    """The source samples stored in a meta-model bundle, standardised by ``normaliser``; None
    for bundles without them (meta-trained without baselines, or before they were stored)."""
    tensors = load_part(model_dir, SOURCES)
    if "x" not in tensors or not len(tensors["x"]):
        return None
    x = torch.from_numpy(normaliser(tensors["x"].numpy()))
    return SourcePool(x, tensors["codes"].numpy(), shot_weight)


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.numpy().reshape(len(x), -1)


def _weights(w: torch.Tensor) -> np.ndarray | None:
    """Sample weights for scikit-learn, None when all are 1 (the same fit: gradient boosting
    takes a path five times slower for any weights at all)."""
    return None if bool((w == 1).all()) else w.numpy()


def pooled_forest(
    pool: SourcePool,
    x: torch.Tensor,
    y: torch.Tensor,
    codes: list[int],
    seed: int,
    weight: torch.Tensor | None = None,
    trees: int = FOREST_TREES,
) -> ForestClassifier:
    """A random forest (the ``random_forest`` baseline's settings) on sources + shots (each
    also weighing its ``weight``: self-training's pseudo-labels)."""
    xs, ys, w = pool.with_shots(x, y, codes, weight)
    return fit_forest(_flat(xs), ys.numpy(), len(codes), seed, _weights(w), trees)


def pooled_boosting(
    pool: SourcePool, x: torch.Tensor, y: torch.Tensor, codes: list[int], seed: int
) -> ForestClassifier:
    """Histogram gradient boosting on sources + shots: scikit-learn's defaults with early
    stopping on a seeded tenth of the pooled samples (what its ``"auto"`` does above 10,000
    samples; on the demo world's sources it stops after about 31 of the 100 iterations, a
    third of the fitting time)."""
    xs, ys, w = pool.with_shots(x, y, codes)
    gb = HistGradientBoostingClassifier(early_stopping=True, random_state=seed)
    gb.fit(_flat(xs), ys.numpy(), sample_weight=_weights(w))
    return ForestClassifier.from_sklearn_boosting(gb, len(codes))


def transfer_pooled(
    pre: Pretrained,
    pool: SourcePool,
    x: torch.Tensor,
    y: torch.Tensor,
    doy: torch.Tensor,
    codes: list[int],
    seed: int,
    cfg: FineTuneConfig | None = None,
) -> CropClassifier:
    """The source classifier fine-tuned (LP-FT) on sources + shots, weighted."""
    xs, ys, w = pool.with_shots(x, y, codes)
    return fine_tune_all(pre, xs, ys, doy, codes, seed, cfg, sample_weight=w)
