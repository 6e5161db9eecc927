"""Honest baselines trained on exactly the support set the meta-learner adapts on.

:func:`baseline_predictions` runs them all on one support/query split: training from scratch,
a random forest, and — when the meta-model bundle holds a pre-trained source classifier (see
:mod:`cropmeta.baselines.transfer`) — transfer learning (head only; all layers) and source-only.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from cropmeta.baselines.names import (
    BASELINES,
    POOLED_METHODS,
    PRESTO_METHODS,
    TRANSFER_METHODS,
)
from cropmeta.baselines.pooled import SourcePool, pooled_boosting, pooled_forest, transfer_pooled
from cropmeta.baselines.presto import presto_forest, presto_linear
from cropmeta.baselines.transfer import fine_tune_all, fine_tune_head, known_mask, source_only
from cropmeta.ingest.prepare import Normaliser
from cropmeta.learners.pretrain import Pretrained
from cropmeta.models.classifier import CropClassifier
from cropmeta.models.encoders import EncoderConfig
from cropmeta.models.fit import fit_on_shots
from cropmeta.models.forest import FOREST_TREES, ForestClassifier, fit_forest
from cropmeta.models.presto_inputs import band_map


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


def random_forest(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    seed: int,
    weight: torch.Tensor | None = None,
    trees: int = FOREST_TREES,
) -> ForestClassifier:
    """A random forest on the flattened series — the workhorse of operational crop mapping —
    fitted by scikit-learn and held as tensors (:mod:`cropmeta.models.forest`), so it predicts,
    saves and maps like the networks; ``weight``: each sample's (self-training's
    pseudo-labels)."""
    w = None if weight is None else weight.numpy()
    return fit_forest(x.numpy().reshape(len(x), -1), y.numpy(), n_classes, seed, w, trees)


@dataclass
class Shots:
    """One target's support and query samples, as every method sees them.

    ``x`` holds the normalised series of the samples, ``y`` their class index (0..n-1, the
    order of ``codes``, the target classes' taxonomy codes). The Presto baselines also read
    the series' ``bands``, the ``normaliser`` that standardised them and the region's
    ``latlon`` (None: unknown); without a normaliser they are left out.
    """

    x_support: torch.Tensor
    y_support: torch.Tensor
    x_query: torch.Tensor
    doy: torch.Tensor
    codes: list[int]
    bands: list[str] = field(default_factory=list)
    normaliser: Normaliser | None = None
    latlon: tuple[float, float] | None = None

    def replace(self, **changes) -> Shots:
        """A copy with ``changes`` (other samples of the same target)."""
        return dataclasses.replace(self, **changes)


@dataclass
class BaselineRun:
    """Query predictions of each baseline, and what a reader must know to judge them."""

    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # fitting and predicting
    proba: dict[str, np.ndarray] = field(default_factory=dict)  # class probabilities

    def add(self, name: str, logits: torch.Tensor) -> None:
        """Method ``name``'s query predictions from its output (logits or log-probabilities)."""
        self.proba[name] = logits.softmax(-1).double().numpy()
        self.predictions[name] = self.proba[name].argmax(-1)

    def merge(self, other: BaselineRun) -> None:
        self.predictions |= other.predictions
        self.proba |= other.proba
        self.notes |= other.notes
        self.seconds |= other.seconds


#: ``(method, fitted model) -> the runs of its variants`` (the transductive ones, :mod:`cropmeta.
#: adapt.transductive`): called for every baseline once it is fitted.
Extend = Callable[[str, nn.Module], BaselineRun]


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
    #: Trees of every random forest baseline (shots only, pooled, Presto), self-trained or not.
    forest_trees: int = FOREST_TREES


def baseline_model(
    name: str, shots: Shots, encoder: EncoderConfig, seed: int, sources: Sources
) -> nn.Module:
    """Baseline ``name`` (one of :data:`~cropmeta.baselines.names.BASELINES`) fitted on the
    support set (and, for the pooled ones, the source samples)."""
    n = len(shots.codes)
    x, y = shots.x_support, shots.y_support
    if name == "from_scratch":
        return from_scratch(x, y, shots.doy, n, encoder, seed)
    if name == "random_forest":
        return random_forest(x, y, n, seed, trees=sources.forest_trees)
    pre, pool = sources.classifier, sources.pool
    if name in POOLED_METHODS and pool is None:
        raise ValueError(f"{name} needs the source samples")
    if name in PRESTO_METHODS:
        if shots.normaliser is None:
            raise ValueError(f"{name} needs the series' bands and normaliser")
        fit = presto_forest if name == "presto_forest" else presto_linear
        prepared = (shots.bands, shots.normaliser, shots.latlon, seed)
        trees = {"trees": sources.forest_trees} if name == "presto_forest" else {}
        return fit(x, y, shots.doy, shots.codes, *prepared, pool=pool, **trees)
    if name == "pooled_forest":
        return pooled_forest(pool, x, y, shots.codes, seed, trees=sources.forest_trees)
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


def unreadable_by_presto(bands: list[str]) -> str | None:
    """Why the Presto baselines cannot read series of ``bands`` (None: they can)."""
    try:
        band_map(bands)
    except ValueError as exc:
        return str(exc)
    return None


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
    extend: Extend | None = None,
) -> BaselineRun:
    """Fit every baseline ``sources`` allow on the support set and predict the query set
    (class indices); ``extend`` adds each fitted baseline's variants."""
    sources = sources or Sources()
    run = BaselineRun()
    methods, run.notes = available(sources)
    why = "the series' standardisation is unknown" if shots.normaliser is None else None
    if (why := why or unreadable_by_presto(shots.bands)) is not None:
        methods = [m for m in methods if m not in PRESTO_METHODS]
        run.notes["presto"] = f"{', '.join(PRESTO_METHODS)} omitted: {why}"

    for name in methods:
        start = time.perf_counter()
        model = baseline_model(name, shots, encoder, seed, sources)
        with torch.no_grad():
            run.add(name, model(shots.x_query, shots.doy))
        run.seconds[name] = round(time.perf_counter() - start, 3)
        if extend is not None:
            run.merge(extend(name, model))
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


def class_frequencies(
    y: np.ndarray, n_classes: int, weight: np.ndarray | None = None
) -> np.ndarray:
    """The (``weight``-ed) share of each class among labels ``y``: the priors a model fitted
    on them was trained under."""
    counts = np.bincount(y, weights=weight, minlength=n_classes).astype(np.float64)
    return counts / counts.sum()


def training_prior(name: str, shots: Shots, sources: Sources) -> np.ndarray:
    """The class priors (the order of ``shots.codes``) method ``name`` was fitted under: the
    pooled samples' weighted shares for the pooled baselines, the source samples' shares for
    source-only (uniform when the bundle stores none), the support's for the rest — what label
    shift re-weights from (:mod:`cropmeta.adapt.label_shift`)."""
    n = len(shots.codes)
    pool = sources.pool
    if name in (*POOLED_METHODS, *PRESTO_METHODS) and pool is not None:
        _, y, w = pool.with_shots(shots.x_support, shots.y_support, shots.codes)
        return class_frequencies(y.numpy(), n, w.numpy())
    if name == "source_only":
        if pool is None or not np.isin(pool.codes, shots.codes).any():
            return np.full(n, 1 / n)
        index = {c: i for i, c in enumerate(shots.codes)}
        y = np.array([index[int(c)] for c in pool.codes if int(c) in index])
        return class_frequencies(y, n)
    return class_frequencies(shots.y_support.numpy(), n)


def weighted_fit(
    name: str, codes: list[int], seed: int, sources: Sources
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], ForestClassifier] | None:
    """The forest baseline ``name`` as a fit of (series, class index, sample weight) — what
    self-training refits with its pseudo-labels — or None for a method that is no forest."""
    if name == "random_forest":
        return lambda x, y, w: random_forest(x, y, len(codes), seed, w, sources.forest_trees)
    if name == "pooled_forest" and sources.pool is not None:
        pool = sources.pool
        return lambda x, y, w: pooled_forest(pool, x, y, codes, seed, w, sources.forest_trees)
    return None
