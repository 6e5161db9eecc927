"""Transductive self-training: the target region's unlabelled samples teach the adapted model.

A few labelled fields per class pin a class down badly, but a new region has thousands of
unlabelled samples whose clusters show where the classes lie. Self-training labels the samples
the model is already sure of and trains on them (the cluster assumption: the decision boundary
belongs in the low-density gaps between clusters). Two forms, one per kind of model:

* :func:`self_train_network` — FixMatch (Sohn et al., 2020, "FixMatch: Simplifying
  Semi-Supervised Learning with Consistency and Confidence", NeurIPS): the pseudo-label is the
  model's class on a weakly augmented view when its probability reaches τ, and the model is
  trained to give that class to a *strongly* augmented view. The strong view here is a
  per-sample draw of the region effects of :mod:`cropmeta.tasks.augment` (phenology shift,
  per-band gain and offset), so consistency teaches exactly the invariances a new region needs.
* :func:`self_train_forest` — classic pseudo-labelling (Yarowsky, 1995; Lee, 2013,
  "Pseudo-Label", ICML-W) for a model without gradients: refit on the support plus the
  confident unlabelled samples, for a few rounds; FixMatch's consistency becomes a filter (the
  weak and strong views must agree). Classes are balanced as in class-balanced self-training
  (CBST: Zou et al., 2018, "Unsupervised Domain Adaptation for Semantic Segmentation via
  Class-Balanced Self-Training", ECCV): a class's threshold is at most the confidence of its
  own top fifth of predictions, so a class the few-shot forest is unsure of (a forest's vote
  shares are compressed towards 1/n) still gets pseudo-labels — without this, one class with
  none was swamped by the others' hundreds and accuracy fell (0.86 → 0.81 in a test problem);
  and no class keeps more than twice the mean number per class.

τ defaults to 0.9, not FixMatch's 0.95 (tuned for images): TimeMatch (Nyborg et al., 2022,
"TimeMatch: Unsupervised Cross-Region Adaptation by Temporal Shift Estimation", ISPRS J.) uses
0.9 for pseudo-labels of crop-type time series in new regions, and fine-tunes at lr 1e-4.
Both functions return the model and a :class:`PseudoLabels` record for the report's notes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from cropmeta.ingest.prepare import TemporalGrid
from cropmeta.models.classifier import CropClassifier
from cropmeta.models.forest import ForestClassifier
from cropmeta.tasks.augment import RegionEffects, TaskAugmentation

TimeIndex = Callable[[int], np.ndarray]
ForestFit = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], ForestClassifier]
CHUNK = 4096  # samples per forward pass when only predicting


class SelfTrainingConfig(BaseModel):
    """Settings of both self-training forms (``steps``, ``lr``, ``batch_size``: networks only;
    ``class_ratio``: forests only)."""

    threshold: float = Field(
        0.9, gt=0, le=1, description="τ: least class probability of a pseudo-label (TimeMatch)"
    )
    rounds: int = Field(
        2, ge=1, description="fresh unlabelled subsamples (forests: refits on new pseudo-labels)"
    )
    unlabelled_weight: float = Field(
        1.0, ge=0, description="λ: weight of the unlabelled term (FixMatch's λ_u = 1)"
    )
    steps: int = Field(
        60, ge=1, description="Adam steps per round (2 × 60 keep it to seconds per adaptation)"
    )
    lr: float = Field(1e-4, gt=0, description="small: the model starts adapted (TimeMatch's)")
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(256, ge=1, description="unlabelled samples per Adam step")
    max_unlabelled: int = Field(
        4096, ge=1, description="unlabelled samples drawn (seeded) per round, to stay cheap"
    )
    class_portion: float = Field(
        0.2,
        gt=0,
        le=1,
        description="a class's threshold is at most the confidence of its top portion of "
        "predictions, so an under-confident class still gets pseudo-labels (CBST's 20%)",
    )
    class_ratio: float = Field(
        2.0,
        ge=1,
        description="a class keeps at most this many times the mean number of pseudo-labels "
        "per class (its most confident ones), so one dominant class cannot swamp the rest",
    )
    shift_steps: int = Field(2, ge=0, description="strong view: phenology shift in ± grid steps")
    gain: float = Field(0.1, ge=0, lt=1, description="strong view: band scaled by 1 ± gain")
    offset: float = Field(0.1, ge=0, description="strong view: band moved by ± offset (std units)")
    weak_noise: float = Field(
        0.0, ge=0, description="weak view: std of Gaussian noise added (0: the sample as it is)"
    )


@dataclass
class PseudoLabels:
    """What self-training used, round by round: unlabelled samples looked at, and pseudo-labels
    per class (networks: confident at the round's end; forests: kept for the refit)."""

    seen: list[int] = field(default_factory=list)
    per_class: list[list[int]] = field(default_factory=list)

    def add(self, seen: int, labels: torch.Tensor, n_classes: int) -> None:
        self.seen.append(seen)
        self.per_class.append(torch.bincount(labels, minlength=n_classes).tolist())

    def note(self) -> str:
        """One line for the report: pseudo-labels of each round, and per class in the last."""
        rounds = ", ".join(f"{sum(c)}/{n}" for n, c in zip(self.seen, self.per_class, strict=True))
        last = self.per_class[-1] if self.per_class else []
        return f"pseudo-labels per round (of unlabelled seen): {rounds}; per class, last: {last}"


def grid_time_index(doy: torch.Tensor) -> TimeIndex:
    """:meth:`RegionEffects.time_index` of the regular grid whose steps fall on ``doy``.

    The grid is rebuilt as first step to last step; a grid whose end is not on a step may wrap
    differently, so a caller holding the grid should pass its own ``time_index``.
    """
    days = [int(d) for d in doy]
    if len(days) < 2:
        raise ValueError("a temporal grid needs at least 2 steps")
    grid = TemporalGrid(start_doy=days[0], end_doy=days[-1], step=(days[1] - days[0]) % 365)
    if grid.doys().tolist() != days:
        raise ValueError(f"day of year {days} is not a regular grid")
    return RegionEffects(TaskAugmentation(), grid).time_index


def strong_views(
    x: torch.Tensor, rng: np.random.Generator, time_index: TimeIndex, cfg: SelfTrainingConfig
) -> torch.Tensor:
    """Every sample of ``x`` (sample, step, band) from its own simulated region: a whole-step
    phenology shift in [-shift_steps, +shift_steps] (``time_index``'s convention: positive is
    later) and per-band gain and offset, as :class:`RegionEffects` draws them per task."""
    n, _, bands = x.shape
    m = cfg.shift_steps
    table = torch.from_numpy(np.stack([time_index(s) for s in range(-m, m + 1)]))
    shift = torch.from_numpy(rng.integers(0, 2 * m + 1, n))
    gain = torch.from_numpy(1 + rng.uniform(-cfg.gain, cfg.gain, (n, 1, bands)))
    offset = torch.from_numpy(rng.uniform(-cfg.offset, cfg.offset, (n, 1, bands)))
    index = table[shift].long()[:, :, None].expand(-1, -1, bands).to(x.device)
    return (x.gather(1, index) * gain.to(x.device) + offset.to(x.device)).to(x.dtype)


def weak_views(x: torch.Tensor, rng: np.random.Generator, cfg: SelfTrainingConfig) -> torch.Tensor:
    """``x`` itself, or with a little Gaussian noise (``weak_noise``)."""
    if not cfg.weak_noise:
        return x
    return x + torch.from_numpy(rng.normal(0, cfg.weak_noise, x.shape)).to(x)


def _subsample(x: torch.Tensor, limit: int, rng: np.random.Generator) -> torch.Tensor:
    if len(x) <= limit:
        return x
    return x[torch.from_numpy(np.sort(rng.choice(len(x), limit, replace=False)))]


@torch.no_grad()
def _proba(model: torch.nn.Module, x: torch.Tensor, doy: torch.Tensor) -> torch.Tensor:
    """Class probabilities (sample, class), in chunks, the model in eval mode."""
    model.eval()
    parts = [model(part, doy).softmax(-1) for part in x.split(CHUNK)]
    return torch.cat(parts)


def self_train_network(
    model: CropClassifier,
    x_support: torch.Tensor,
    y_support: torch.Tensor,
    x_unlabelled: torch.Tensor,
    doy: torch.Tensor,
    cfg: SelfTrainingConfig | None = None,
    seed: int = 0,
    time_index: TimeIndex | None = None,
) -> tuple[CropClassifier, PseudoLabels]:
    """FixMatch on a copy of the adapted ``model`` (which is left as it is); the copy in eval
    mode and the record.

    Each round draws ``max_unlabelled`` unlabelled samples; each Adam step minimises
    CE(support) + λ · mean over a batch of them of 1[max p_weak ≥ τ] · CE(strong view, argmax
    p_weak), p_weak the model's probabilities (eval mode, no gradient) on the weak view. Any
    head works: only ``model(x, doy)`` is called (a support-reading head keeps its stored
    memory; the support term keeps the encoder consistent with it). Deterministic for a seed:
    numpy and torch draw from local, seeded generators.
    """
    cfg = cfg or SelfTrainingConfig()
    time_index = time_index or grid_time_index(doy)
    rng = np.random.default_rng(seed)
    student = copy.deepcopy(model)
    record = PseudoLabels()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        opt = torch.optim.Adam(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        for _ in range(cfg.rounds if len(x_unlabelled) else 0):
            pool = _subsample(x_unlabelled, cfg.max_unlabelled, rng)
            for _ in range(cfg.steps):
                pick = rng.choice(len(pool), min(cfg.batch_size, len(pool)), replace=False)
                batch = pool[torch.from_numpy(pick)]
                conf, label = _proba(student, weak_views(batch, rng, cfg), doy).max(-1)
                mask = (conf >= cfg.threshold).to(batch.dtype)
                strong = strong_views(batch, rng, time_index, cfg)
                student.train()
                opt.zero_grad()
                loss = F.cross_entropy(student(x_support, doy), y_support)
                if mask.any():
                    ce = F.cross_entropy(student(strong, doy), label, reduction="none")
                    loss = loss + cfg.unlabelled_weight * (ce * mask).mean()
                loss.backward()
                opt.step()
            proba = _proba(student, pool, doy)
            conf, label = proba.max(-1)
            record.add(len(pool), label[conf >= cfg.threshold], proba.shape[-1])
    return student.eval(), record


def self_train_forest(
    fit: ForestFit,
    x_support: torch.Tensor,
    y_support: torch.Tensor,
    x_unlabelled: torch.Tensor,
    doy: torch.Tensor,
    cfg: SelfTrainingConfig | None = None,
    seed: int = 0,
    time_index: TimeIndex | None = None,
) -> tuple[ForestClassifier, PseudoLabels]:
    """Pseudo-labelling for a forest: the last refit and the record.

    ``fit(x, y, weight)`` fits on the support first (weights 1); then each round draws
    ``max_unlabelled`` unlabelled samples, keeps those whose weak view has a class probability
    ≥ τ (or its class's lower CBST threshold, see ``class_portion``) and whose strong view gets
    the same class (FixMatch's consistency as a filter), caps each class (``class_ratio``), and
    refits ``fit`` from scratch on the support followed by
    the pseudo-labelled samples — the caller's fit receives them appended after the support,
    weighted λ — so it may be a forest on the shots or on sources + shots (a pooled forest
    puts the source samples before them). Pseudo-labels are redrawn each round from the
    latest fit, never accumulated. Deterministic for a seed if ``fit`` is. Without unlabelled
    samples it is the support-only fit and an empty record (likewise for networks).
    """
    cfg = cfg or SelfTrainingConfig()
    time_index = time_index or grid_time_index(doy)
    rng = np.random.default_rng(seed)
    model = fit(x_support, y_support, torch.ones(len(y_support)))
    record = PseudoLabels()
    for _ in range(cfg.rounds if len(x_unlabelled) else 0):
        pool = _subsample(x_unlabelled, cfg.max_unlabelled, rng)
        weak = _proba(model, weak_views(pool, rng, cfg), doy)
        strong = _proba(model, strong_views(pool, rng, time_index, cfg), doy)
        conf, label = weak.max(-1)
        chosen = _select(conf, label, strong.argmax(-1) == label, weak.shape[-1], cfg)
        record.add(len(pool), label[chosen], weak.shape[-1])
        x = torch.cat([x_support, pool[chosen]])
        y = torch.cat([y_support, label[chosen]])
        pseudo = torch.full((len(chosen),), cfg.unlabelled_weight)
        weight = torch.cat([torch.ones(len(y_support)), pseudo])
        model = fit(x, y, weight)
    return model, record


def _select(
    conf: torch.Tensor,
    label: torch.Tensor,
    agree: torch.Tensor,
    n_classes: int,
    cfg: SelfTrainingConfig,
) -> torch.Tensor:
    """Indices of the samples to pseudo-label, sorted: those whose views agree and whose
    confidence reaches their class's threshold, min(τ, the confidence of the class's top
    ``class_portion`` of predictions), at most ``class_ratio`` × the mean number per class
    (each class's most confident first; ties by index)."""
    keep = torch.zeros_like(agree)
    for c in range(n_classes):
        members = label == c
        if members.any():
            top = torch.quantile(conf[members].double(), 1 - cfg.class_portion).item()
            # log-probabilities are float32: a vote share of exactly τ may come back a hair below
            keep |= members & agree & (conf >= min(cfg.threshold, top) - 1e-6)
    counts = torch.bincount(label[keep], minlength=n_classes)
    cap = max(1, math.ceil(cfg.class_ratio * int(counts.sum()) / n_classes))
    chosen = []
    for c in range(n_classes):
        members = torch.nonzero(keep & (label == c)).flatten()
        order = torch.argsort(-conf[members].double(), stable=True)
        chosen.append(members[order[:cap]])
    return torch.sort(torch.cat(chosen)).values
