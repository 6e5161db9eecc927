"""Phenology-shift alignment: how many grid steps later the target's crops grow than the sources'.

A model trained on the sources' crop calendar misreads a region whose crops grow weeks earlier
or later. TimeMatch (Nyborg et al., 2022, "TimeMatch: Unsupervised Cross-Region Adaptation by
Temporal Shift Estimation", ISPRS J. Photogramm. Remote Sens.) estimates that offset without
target labels: it shifts the unlabelled target series by each candidate offset, lets the source
model predict them, and keeps the offset whose predictions look most like the source's — its
AM score (after Zhou et al., 2018, "Activation Maximization Generative Adversarial Nets",
ICLR): the KL divergence from the source class distribution to the distribution of the model's
predicted classes, plus the mean entropy of its predictions (lower is better: the right
calendar gives confident predictions in the expected proportions). TimeMatch then refines the
class distribution with its own pseudo-labels during training; here one pass with the sources'
distribution estimates the offset before adapting.

Sign convention, from :meth:`RegionEffects.time_index`: ``time_index(s)`` gives the source step
of each output step when the phenology moves ``s`` steps later, i.e. a series ``x`` delayed by
``s`` is ``x[:, time_index(s)]``. A target whose phenology is ``s`` steps later than the sources'
(``s > 0``: later) is therefore brought back onto the sources' calendar by the opposite move,
``shift_series(x_target, time_index(-s))`` (:func:`aligning_index`).

With labelled support samples the source model's mean negative log-likelihood of their labels
is a second, supervised score, and the two are added: both are mean nats per sample, so their
sum is the semi-supervised objective of entropy regularisation (Grandvalet & Bengio, 2005,
"Semi-supervised Learning by Entropy Minimization", NeurIPS) — labelled cross-entropy plus
unlabelled entropy — with TimeMatch's class-distribution term. The labels correct the AM
score where the target's class mix differs from the sources'; the many unlabelled samples
steady the few labels. The lowest sum wins; ties (within 1e-9) go to the smallest |shift|.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

TIE = 1e-9
EPS = 1e-6  # probabilities are floored here before a log (a forest's votes can be exactly 0)


@dataclass
class ShiftEstimate:
    """The chosen shift (grid steps; > 0: the target's phenology is later than the sources')
    and, per candidate shift, the scores behind it (lower is better)."""

    shift: int
    candidates: list[int]
    unsupervised: list[float]  # AM score of the aligned unlabelled target
    supervised: list[float] | None  # mean NLL of the aligned support; None without support
    score: list[float]  # what was minimised: unsupervised (+ supervised)


def shift_series(x: torch.Tensor, index: np.ndarray) -> torch.Tensor:
    """``x`` (sample, step, band) with its steps taken at ``index`` (a ``time_index`` result)."""
    return x[:, torch.as_tensor(index, dtype=torch.long)]


def aligning_index(time_index: Callable[[int], np.ndarray], shift: int) -> np.ndarray:
    """The steps that bring a target ``shift`` steps later than the sources back onto the
    sources' calendar: ``time_index(-shift)``."""
    return time_index(-shift)


def am_score(proba: np.ndarray, prior: np.ndarray) -> float:
    """TimeMatch's AM score of predictions ``proba`` (sample, class) against class distribution
    ``prior``: KL(prior ‖ share of samples predicted as each class) + mean entropy, in nats."""
    predicted = np.bincount(proba.argmax(-1), minlength=proba.shape[-1]) / len(proba)
    kl = float(np.sum(prior * (np.log(prior + EPS) - np.log(predicted + EPS))))
    entropy = float(-np.mean(np.sum(proba * np.log(proba + EPS), axis=-1)))
    return kl + entropy


def estimate_shift(
    predict_proba: Callable[[torch.Tensor], torch.Tensor],
    x_unlabelled: torch.Tensor,
    source_prior: np.ndarray,
    time_index: Callable[[int], np.ndarray],
    max_shift: int,
    x_support: torch.Tensor | None = None,
    y_support: torch.Tensor | None = None,
    max_unlabelled: int = 4096,
    seed: int = 0,
) -> ShiftEstimate:
    """The target's phenology shift among -max_shift..+max_shift (see the module's docstring).

    ``predict_proba`` gives the source model's probabilities over the target's classes;
    ``source_prior`` the sources' share of each target class (normalised here; 0 for a class
    the sources lack); ``time_index`` is :meth:`RegionEffects.time_index` of the grid. At most
    ``max_unlabelled`` unlabelled samples are scored (a seeded subsample), each candidate once.
    """
    prior = np.asarray(source_prior, dtype=np.float64)
    prior = prior / prior.sum()
    x_u = x_unlabelled
    if len(x_u) > max_unlabelled:
        pick = np.sort(np.random.default_rng(seed).choice(len(x_u), max_unlabelled, replace=False))
        x_u = x_u[torch.from_numpy(pick)]
    candidates = sorted(range(-max_shift, max_shift + 1), key=lambda s: (abs(s), s))

    def proba(x: torch.Tensor, shift: int) -> np.ndarray:
        with torch.no_grad():
            p = predict_proba(shift_series(x, aligning_index(time_index, shift)))
        return p.double().numpy()

    unsupervised = [am_score(proba(x_u, s), prior) for s in candidates]
    supervised = None
    if x_support is not None and y_support is not None and len(y_support):
        rows, y = np.arange(len(y_support)), y_support.numpy()
        supervised = [
            float(-np.mean(np.log(np.maximum(proba(x_support, s)[rows, y], EPS))))
            for s in candidates
        ]
    score = list(unsupervised) if supervised is None else list(np.add(unsupervised, supervised))
    best = min(score)
    chosen = next(s for s, v in zip(candidates, score, strict=True) if v <= best + TIE)
    order = np.argsort(candidates)
    pick = [int(i) for i in order]
    return ShiftEstimate(
        shift=chosen,
        candidates=[candidates[i] for i in pick],
        unsupervised=[unsupervised[i] for i in pick],
        supervised=None if supervised is None else [supervised[i] for i in pick],
        score=[float(score[i]) for i in pick],
    )
