"""Transductive adaptation: what the target region's unlabelled samples add to a fitted model.

A user mapping a region has, besides the K labelled fields per class, every other field and
pixel of that region — unlabelled, and the very samples the map is for. Four ways to use them,
each applied to a fitted method and scored beside it as ``<method>+<how>``:

* ``label_shift`` — the region's class priors estimated by EM from the model's posteriors on the
  unlabelled samples, and the posteriors re-weighted to them (:mod:`.label_shift`; Saerens et
  al. 2002): balanced supports, unbalanced regions;
* ``bbse`` — the same re-weighting to the priors black-box shift estimation finds from the
  support's cross-validation and the fold models' predictions of the unlabelled samples
  (:func:`~.label_shift.bbse_priors`; Lipton et al. 2018): needs no calibrated posteriors, and
  is what ``--method best`` cross-validates under the region's priors;
* ``self_training`` — confident pseudo-labels of the unlabelled samples, consistent under the
  region-effect augmentations, added to the fit (:mod:`.self_training`; FixMatch, Sohn et al.
  2020; for forests, plain pseudo-labelling);
* ``timematch`` — the region's crop-calendar offset against the sources, estimated from the
  source model's predictions on the shifted unlabelled samples, and the series aligned before
  the method is fitted (:mod:`.phenology_shift`; Nyborg et al. 2022);
* ``soft_kmeans`` — prototypes refined by one soft k-means step over the unlabelled embeddings
  (Ren et al. 2018, "Meta-learning for semi-supervised few-shot classification", ICLR): for
  the prototypical network only.

The unlabelled samples' labels are never read: in ``evaluate`` the query samples serve as the
unlabelled set (at map time every pixel of the region is), and the label-permutation test in
tests/adapt/test_transductive.py holds every method to it. Corrections that do not change the model
(alignment, label shift) wrap it (:class:`cropmeta.models.adjusted.AdjustedClassifier`), so a
saved ``pooled_forest+label_shift`` maps with exactly the priors evaluation scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from cropmeta.adapt.label_shift import PriorEstimate, em_priors
from cropmeta.adapt.names import SEPARATOR, TRANSDUCTIONS
from cropmeta.adapt.phenology_shift import (
    ShiftEstimate,
    aligning_index,
    estimate_shift,
    shift_series,
)
from cropmeta.adapt.self_training import (
    ForestFit,
    SelfTrainingConfig,
    self_train_forest,
    self_train_network,
)
from cropmeta.baselines.run import Shots, class_frequencies
from cropmeta.models.adjusted import AdjustedClassifier, AdjustedHeadConfig
from cropmeta.models.classifier import CropClassifier

#: fits method ``name`` on the given shots (the learner adapts; a baseline is fitted)
Refit = Callable[[str, Shots], nn.Module]


@dataclass
class Unlabelled:
    """What the transductive methods may use besides the shots: the region's unlabelled series
    (standardised like the model's inputs); per method, the class priors it was fitted under
    (``train_prior``), how to fit it again (``refit``) and, for the forests, with sample weights
    (``weighted_fit``: None for the networks); the source model over the target's classes and
    its class shares, for alignment (None: the bundle stores no source classifier); the grid's
    ``time_index`` (:meth:`cropmeta.tasks.augment.RegionEffects.time_index`) and the largest
    shift tried. ``notes`` collects what each correction found (for the report)."""

    x: torch.Tensor
    train_prior: Callable[[str], np.ndarray]
    refit: Refit
    learner: str
    time_index: Callable[[int], np.ndarray]
    weighted_fit: Callable[[str], ForestFit | None] = lambda _: None
    source: Callable[[], nn.Module] | None = None
    source_prior: np.ndarray | None = None
    max_shift: int = 0
    seed: int = 0
    self_training: SelfTrainingConfig = field(default_factory=SelfTrainingConfig)
    notes: dict[str, str] = field(default_factory=dict)
    #: the region's class priors found by cross-validation (``bbse``; None: not estimated)
    prior: np.ndarray | None = None
    #: the calendar shift found for a support set (by its tensor): one estimate serves every
    #: method aligned on it
    shifts: dict[int, ShiftEstimate] = field(default_factory=dict, repr=False)


def variant(method: str, how: str) -> str:
    """The name ``<method>+<how>`` a transductive variant is scored and saved under."""
    return f"{method}{SEPARATOR}{how}"


def split_variant(name: str) -> tuple[str, str | None]:
    """``pooled_forest+label_shift`` → (``pooled_forest``, ``label_shift``); a plain method →
    (name, None)."""
    base, _, how = name.partition(SEPARATOR)
    if how and how not in TRANSDUCTIONS:
        raise ValueError(f"{name!r}: {how!r} is not one of {', '.join(TRANSDUCTIONS)}")
    return base, how or None


def applies(how: str, method: str, data: Unlabelled) -> bool:
    """Whether ``evaluate`` scores ``method+how``: label shift for every method; self-training
    for the learner and the forests; alignment for the learner and the forests when the source
    classifier is stored; soft k-means for the prototypical network."""
    if how == "label_shift":
        return True
    if how == "bbse":
        return data.prior is not None
    if how == "soft_kmeans":
        return method == data.learner == "protonet"
    if how == "timematch" and (data.source is None or data.max_shift == 0):
        return False
    return method in (data.learner, "random_forest", "pooled_forest")


def transduce(how: str, method: str, model: nn.Module, on: Shots, data: Unlabelled) -> nn.Module:
    """``model`` (method ``method`` fitted on ``on``'s support) corrected with the unlabelled
    samples in way ``how``."""
    if how == "label_shift":
        return with_label_shift(model, on, data.x, data.train_prior(method), data, method)
    if how == "bbse":
        return with_prior(model, data, method)
    if how == "soft_kmeans":
        return soft_kmeans(model, on, data.x)
    if how == "self_training":
        return self_trained(method, model, on, data)
    if how == "timematch":
        return aligned(method, on, data)
    raise ValueError(f"{how!r}: not one of {', '.join(TRANSDUCTIONS)}")


def self_trained(method: str, model: nn.Module, on: Shots, data: Unlabelled) -> nn.Module:
    """``model`` trained further on its confident, augmentation-consistent pseudo-labels of the
    unlabelled samples (:mod:`.self_training`): a network by FixMatch, a forest refitted."""
    args = (on.x_support, on.y_support, data.x, on.doy, data.self_training, data.seed)
    fit = data.weighted_fit(method)
    if fit is not None:
        trained, record = self_train_forest(fit, *args, time_index=data.time_index)
    elif isinstance(model, CropClassifier):
        trained, record = self_train_network(model, *args, time_index=data.time_index)
    else:
        raise ValueError(f"self-training is for the networks and the forests, not {method}")
    data.notes[variant(method, "self_training")] = record.note()
    return trained


def aligned(method: str, on: Shots, data: Unlabelled) -> AdjustedClassifier:
    """Method ``method`` fitted on the support aligned to the sources' crop calendar, reading
    every series aligned alike: the shift TimeMatch's criterion (:mod:`.phenology_shift`) finds
    for the source model on the unlabelled samples, with the support's likelihood."""
    if data.source is None or data.source_prior is None:
        raise ValueError("alignment needs the source classifier the meta-model stores")
    key = on.x_support.data_ptr()
    if key not in data.shifts:
        source = data.source()
        data.shifts[key] = estimate_shift(
            lambda x: torch.from_numpy(posteriors(source, x, on.doy)),
            data.x,
            data.source_prior,
            data.time_index,
            data.max_shift,
            on.x_support,
            on.y_support,
            seed=data.seed,
        )
    estimate = data.shifts[key]
    index = aligning_index(data.time_index, estimate.shift)
    shifted = on.replace(x_support=shift_series(on.x_support, index))
    fitted = data.refit(method, shifted)
    data.notes[variant(method, "timematch")] = (
        f"crop calendar {estimate.shift:+d} grid steps against the sources' (tried "
        f"{estimate.candidates[0]:+d}..{estimate.candidates[-1]:+d})"
    )
    cfg = AdjustedHeadConfig(
        member={}, time_index=[int(i) for i in index], shift_steps=estimate.shift
    )
    return AdjustedClassifier(cfg, fitted).eval()


def posteriors(
    model: nn.Module, x: torch.Tensor, doy: torch.Tensor, batch: int = 8192
) -> np.ndarray:
    """Class probabilities (sample, class) of ``x``, in batches."""
    with torch.no_grad():
        parts = [model(x[i : i + batch], doy).softmax(-1) for i in range(0, len(x), batch)]
    return torch.cat(parts).double().numpy() if parts else np.zeros((0, 0))


def with_label_shift(
    model: nn.Module,
    on: Shots,
    x_unlabelled: torch.Tensor,
    train_prior: np.ndarray,
    data: Unlabelled | None = None,
    method: str = "",
) -> AdjustedClassifier:
    """``model`` re-weighted to the class priors EM estimates from its posteriors on
    ``x_unlabelled`` (:func:`cropmeta.adapt.label_shift.em_priors`)."""
    estimate = em_priors(posteriors(model, x_unlabelled, on.doy), train_prior)
    if data is not None:
        shares = ", ".join(f"{p:.2f}" for p in estimate.target)
        data.notes[variant(method, "label_shift")] = (
            f"class priors estimated from {len(x_unlabelled)} unlabelled samples: {shares} "
            f"({estimate.iterations} EM iterations)"
        )
    return prior_adjusted(model, estimate)


def with_prior(model: nn.Module, data: Unlabelled, method: str) -> AdjustedClassifier:
    """``model`` (method ``method``) re-weighted to the region's priors ``data.prior``, found
    by black-box shift estimation in the support's cross-validation."""
    if data.prior is None:
        raise ValueError("the region's class priors are estimated by cross-validation (--cv)")
    estimate = PriorEstimate(data.prior, data.train_prior(method), 0, True)
    shares = ", ".join(f"{p:.2f}" for p in estimate.target)
    data.notes[variant(method, "bbse")] = f"class priors from cross-validation: {shares}"
    return prior_adjusted(model, estimate)


def prior_adjusted(model: nn.Module, estimate: PriorEstimate) -> AdjustedClassifier:
    """``model`` with its log-posteriors shifted by ``estimate``'s log prior ratio."""
    cfg = AdjustedHeadConfig(
        member={},  # filled in when saved (cropmeta.models.bundle.head_config)
        log_prior_ratio=[float(v) for v in estimate.log_ratio],
        target_prior=[round(float(v), 6) for v in estimate.target],
    )
    return AdjustedClassifier(cfg, model).eval()


def soft_kmeans(model: nn.Module, on: Shots, x_unlabelled: torch.Tensor) -> CropClassifier:
    """The prototypical network's prototypes moved by one soft k-means step: each class's
    prototype becomes the mean of its support embeddings and of the unlabelled embeddings,
    these weighted by their soft assignment (the softmax of the model's scores, i.e. of negative
    squared distances) — Ren et al. (2018), eq. 4."""
    if not isinstance(model, CropClassifier) or model.head.cfg.kind != "linear":
        raise ValueError("soft k-means refines a prototypical network's prototypes")
    n = len(on.codes)
    with torch.no_grad():
        emb_s = model(on.x_support, on.doy, embedding=True)
        emb_u = model(x_unlabelled, on.doy, embedding=True)
        z = model.head(emb_u).softmax(-1)  # (unlabelled, class)
        onehot = torch.nn.functional.one_hot(on.y_support, n).to(emb_s.dtype)
        weights = torch.cat([onehot, z])
        protos = (weights.T @ torch.cat([emb_s, emb_u])) / weights.sum(0).unsqueeze(1)
    params = {k: v.detach() for k, v in model.named_parameters()}
    params |= {"head.weight": 2 * protos, "head.bias": -(protos**2).sum(1)}
    return model.with_params(params, n)


def support_prior(on: Shots) -> np.ndarray:
    """The class shares of the support set: the priors a method fitted on the shots alone was
    trained under (uniform for K shots of every class)."""
    return class_frequencies(on.y_support.numpy(), len(on.codes))
