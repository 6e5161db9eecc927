"""Honest baselines trained on exactly the support set the meta-learner adapts on.

:func:`baseline_predictions` runs them all on one support/query split: training from scratch,
a random forest, and — when the meta-model bundle holds a pre-trained source classifier (see
:mod:`cropmeta.adapt.transfer`) — transfer learning (head only; all layers) and source-only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.ensemble import RandomForestClassifier

from cropmeta.adapt.names import TRANSFER_METHODS
from cropmeta.adapt.transfer import (
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


def baseline_model(
    name: str, shots: Shots, encoder: EncoderConfig, seed: int, pretrained: Pretrained | None
) -> CropClassifier | ForestClassifier:
    """Baseline ``name`` (one of :data:`~cropmeta.adapt.names.BASELINES`) fitted on the support
    set."""
    n = len(shots.codes)
    if name == "from_scratch":
        return from_scratch(shots.x_support, shots.y_support, shots.doy, n, encoder, seed)
    if name == "random_forest":
        return random_forest(shots.x_support, shots.y_support, n, seed)
    if pretrained is None:
        raise ValueError(f"{name} needs the pre-trained source classifier")
    if name == "source_only":
        return source_only(pretrained, shots.codes)
    fit = {"transfer_head": fine_tune_head, "transfer_all": fine_tune_all}[name]
    return fit(pretrained, shots.x_support, shots.y_support, shots.doy, shots.codes, seed)


def baseline_predictions(
    shots: Shots,
    encoder: EncoderConfig,
    seed: int,
    pretrained: Pretrained | None = None,
    names: dict[int, str] | None = None,
) -> BaselineRun:
    """Fit every baseline on the support set and predict the query set (class indices)."""
    run = BaselineRun()
    n = len(shots.codes)

    def predict(name: str) -> np.ndarray:
        model = baseline_model(name, shots, encoder, seed, pretrained)
        with torch.no_grad():
            return model(shots.x_query, shots.doy).argmax(-1).numpy()

    run.add("from_scratch", lambda: predict("from_scratch"))
    run.add("random_forest", lambda: predict("random_forest"))
    if pretrained is None:
        run.notes["transfer"] = (
            "the meta-model holds no pre-trained source classifier (meta-trained without "
            "baselines): " + ", ".join(TRANSFER_METHODS) + " omitted"
        )
        return run
    for name in TRANSFER_METHODS:
        run.add(name, lambda name=name: predict(name))
    unknown = [
        c for c, k in zip(shots.codes, known_mask(pretrained, shots.codes), strict=True) if not k
    ]
    if unknown:
        listed = ", ".join((names or {}).get(c, str(c)) for c in unknown)
        run.notes["source_only"] = (
            f"cannot predict {len(unknown)} of {n} classes the sources never saw ({listed}); "
            "their query samples count as errors"
        )
    return run
