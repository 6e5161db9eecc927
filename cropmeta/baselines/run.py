"""Honest baselines trained on exactly the support set the meta-learner adapts on.

:func:`baseline_predictions` runs them all on one support/query split: training from scratch,
a random forest, and — when the meta-model bundle holds a pre-trained source classifier (see
:mod:`cropmeta.baselines.transfer`) — transfer learning (head only; all layers) and source-only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.ensemble import RandomForestClassifier

from cropmeta.baselines.names import BASELINES, POOLED_METHODS, TRANSFER_METHODS
from cropmeta.baselines.pooled import SourcePool, pooled_boosting, pooled_forest, transfer_pooled
from cropmeta.baselines.transfer import (
    Pretrained,
    fine_tune_all,
    fine_tune_head,
    known_mask,
    source_only,
)
from cropmeta.models.classifier import CropClassifier
from cropmeta.models.encoders import EncoderConfig
from cropmeta.models.fit import fit_on_shots
from cropmeta.models.forest import ForestClassifier


def from_scratch(
    x: torch.Tensor,
    y: torch.Tensor,
    doy: torch.Tensor,
    n_classes: int,
    encoder: EncoderConfig,
    seed: int,
    epochs: int = 150,
    lr: float = 1e-3,
) -> CropClassifier:
    """The same architecture, randomly initialised, trained with Adam on the shots alone."""
    torch.manual_seed(seed)
    model = CropClassifier(x.shape[-1], x.shape[-2], encoder, n_classes)
    return fit_on_shots(model, lambda: model(x, doy), y, epochs, lr, weight_decay=1e-4)


def random_forest(x: torch.Tensor, y: torch.Tensor, n_classes: int, seed: int) -> ForestClassifier:
    """A random forest on the flattened series — the workhorse of operational crop mapping —
    fitted by scikit-learn and held as tensors (:mod:`cropmeta.models.forest`), so it predicts,
    saves and maps like the networks."""
    rf = RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=1)
    rf.fit(x.numpy().reshape(len(x), -1), y.numpy())
    return ForestClassifier.from_sklearn(rf, n_classes)


@dataclass
class Shots:
    """One target's support and query samples, as every method sees them.

    ``x`` holds the normalised series of the samples, ``y`` their class index (0..n-1, the
    order of ``codes``, the target classes' taxonomy codes).
    """

    x_support: torch.Tensor
    y_support: torch.Tensor
    x_query: torch.Tensor
    doy: torch.Tensor
    codes: list[int]


@dataclass
class BaselineRun:
    """Query predictions of each baseline, and what a reader must know to judge them."""

    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # fitting and predicting

    def add(self, name: str, fit_and_predict: Callable[[], np.ndarray]) -> None:
        start = time.perf_counter()
        self.predictions[name] = fit_and_predict()
        self.seconds[name] = round(time.perf_counter() - start, 3)


#: What each baseline needs from the sources, beyond the shots.
NEEDS = {
    **{name: ("classifier",) for name in TRANSFER_METHODS},
    "pooled_forest": ("pool",),
    "pooled_boosting": ("pool",),
    "transfer_pooled": ("classifier", "pool"),
}


@dataclass
class Sources:
    """What the source regions lend the baselines, as a meta-model bundle stores them: the
    pre-trained source classifier (:mod:`.transfer`) and the labelled source samples
    (:mod:`.pooled`); either is None for bundles meta-trained without baselines."""

    classifier: Pretrained | None = None
    pool: SourcePool | None = None


def baseline_model(
    name: str, shots: Shots, encoder: EncoderConfig, seed: int, sources: Sources
) -> CropClassifier | ForestClassifier:
    """Baseline ``name`` (one of :data:`~cropmeta.baselines.names.BASELINES`) fitted on the
    support set (and, for the pooled ones, the source samples)."""
    n = len(shots.codes)
    x, y = shots.x_support, shots.y_support
    if name == "from_scratch":
        return from_scratch(x, y, shots.doy, n, encoder, seed)
    if name == "random_forest":
        return random_forest(x, y, n, seed)
    pre, pool = sources.classifier, sources.pool
    if name in POOLED_METHODS and pool is None:
        raise ValueError(f"{name} needs the source samples")
    if name == "pooled_forest":
        return pooled_forest(pool, x, y, shots.codes, seed)
    if name == "pooled_boosting":
        return pooled_boosting(pool, x, y, shots.codes, seed)
    if pre is None:
        raise ValueError(f"{name} needs the pre-trained source classifier")
    if name == "transfer_pooled":
        return transfer_pooled(pre, pool, x, y, shots.doy, shots.codes, seed)
    if name == "source_only":
        return source_only(pre, shots.codes)
    fit = {"transfer_head": fine_tune_head, "transfer_all": fine_tune_all}[name]
    return fit(pre, x, y, shots.doy, shots.codes, seed)


def available(sources: Sources) -> tuple[list[str], dict[str, str]]:
    """The baselines ``sources`` allow, in report order, and a note naming those left out."""
    has = {"classifier": sources.classifier is not None, "pool": sources.pool is not None}
    methods = [n for n in BASELINES if all(has[k] for k in NEEDS.get(n, ()))]
    omitted = [n for n in BASELINES if n not in methods]
    if not omitted:
        return methods, {}
    why = {"classifier": "no pre-trained source classifier", "pool": "no source samples"}
    lacking = " and ".join(why[k] for k, ok in has.items() if not ok)
    note = (
        f"the meta-model holds {lacking} (meta-trained without baselines, or by an older "
        f"cropmeta): {', '.join(omitted)} omitted"
    )
    return methods, {"baselines": note}


def baseline_predictions(
    shots: Shots,
    encoder: EncoderConfig,
    seed: int,
    sources: Sources | None = None,
    names: dict[int, str] | None = None,
) -> BaselineRun:
    """Fit every baseline ``sources`` allow on the support set and predict the query set
    (class indices)."""
    sources = sources or Sources()
    run = BaselineRun()
    methods, run.notes = available(sources)

    def predict(name: str) -> np.ndarray:
        model = baseline_model(name, shots, encoder, seed, sources)
        with torch.no_grad():
            return model(shots.x_query, shots.doy).argmax(-1).numpy()

    for name in methods:
        run.add(name, lambda name=name: predict(name))
    if sources.classifier is None:
        return run
    known = known_mask(sources.classifier, shots.codes)
    unknown = [c for c, k in zip(shots.codes, known, strict=True) if not k]
    if unknown:
        listed = ", ".join((names or {}).get(c, str(c)) for c in unknown)
        run.notes["source_only"] = (
            f"cannot predict {len(unknown)} of {len(shots.codes)} classes the sources never saw "
            f"({listed}); their query samples count as errors"
        )
    return run
