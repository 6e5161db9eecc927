"""Label shift: the target region's class priors, estimated from its unlabelled samples.

Few-shot supports are class-balanced (K fields a class) where a region's crops rarely are: on
a region where one crop covers 70 % of the fields, a model adapted on 5 fields a class predicts
as if every crop were equally common, and its overall accuracy falls below that of a classifier
that never saw the region (issue 18). Under label shift — p(x | y) the same, p(y) different —
the posteriors of a model trained under priors π_s are re-weighted to the target's priors π_t
by p_t(y | x) ∝ p_s(y | x) · π_t(y) / π_s(y), and π_t is the fixed point of

    π_t ← mean over the unlabelled samples of that re-weighted posterior,

the EM algorithm of Saerens, Latinne & Decaestecker (2002, "Adjusting the outputs of a
classifier to new a priori probabilities: a simple procedure", Neural Computation 14). It needs
nothing but the model's posteriors on the region's unlabelled samples — at map time every pixel
of the region — and the priors the model was trained under. Alexandari et al. (2020, ICML) find
it hard to beat when the posteriors are calibrated; a model's posteriors rarely are, so the
estimate is only as good as they are (the evaluation's ``+label_shift`` rows measure whether it
helps on real data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Smallest prior a class keeps: a class no unlabelled sample supports is not ruled out.
FLOOR = 1e-6


@dataclass
class PriorEstimate:
    """The target's estimated class priors, the priors the model was trained under, and how
    many EM iterations it took (``converged`` False: stopped at the limit)."""

    target: np.ndarray
    train: np.ndarray
    iterations: int
    converged: bool

    @property
    def log_ratio(self) -> np.ndarray:
        """log π_t / π_s: added to the model's log-posteriors, it re-weights them."""
        return np.log(np.maximum(self.target, FLOOR)) - np.log(np.maximum(self.train, FLOOR))


def em_priors(
    proba: np.ndarray,
    train_prior: np.ndarray,
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> PriorEstimate:
    """Saerens et al.'s EM estimate of the class priors of the samples whose posteriors under
    ``train_prior`` are ``proba`` (sample, class); stops when no prior moves more than ``tol``."""
    proba = np.asarray(proba, dtype=np.float64)
    train = np.maximum(np.asarray(train_prior, dtype=np.float64), FLOOR)
    train = train / train.sum()
    prior = train.copy()
    for iteration in range(1, max_iter + 1):
        weighted = proba * (prior / train)
        weighted /= np.maximum(weighted.sum(1, keepdims=True), np.finfo(float).tiny)
        new = np.maximum(weighted.mean(0), FLOOR)
        new /= new.sum()
        if np.abs(new - prior).max() < tol:
            return PriorEstimate(new, train, iteration, True)
        prior = new
    return PriorEstimate(prior, train, max_iter, False)


#: Unlabelled samples, at most, whose predictions by every cross-validation fold's model feed
#: the black-box estimate (a class share's standard error ≈ 0.016 at 1000).
BBSE_SAMPLES = 1000


def confusion(y: np.ndarray, predicted: np.ndarray, n: int) -> np.ndarray:
    """P(predicted class i | true class j) as an (i, j) matrix, from held-out predictions."""
    counts = np.zeros((n, n))
    np.add.at(counts, (predicted, y), 1.0)
    return counts / np.maximum(counts.sum(0, keepdims=True), 1.0)


def bbse_priors(confusions: list[np.ndarray], shares: list[np.ndarray]) -> np.ndarray:
    """The target's class priors π by black-box shift estimation (Lipton, Wang & Smola 2018,
    "Detecting and correcting for label shift with black box predictors", ICML): under label
    shift a classifier's prediction shares on the target are ``C π``, C its confusion matrix
    P(ŷ = i | y = j), whatever its calibration; so π solves ``C π = q``. Here every method's
    confusion (from the support's cross-validation, i.e. measured on the target region itself)
    and prediction shares ``q`` (of the unlabelled samples, by the same fold models) are stacked
    into one least-squares system, solved on the probability simplex (scipy's NNLS with the
    sum-to-one row weighted heavily): several noisy 5-shot confusions agree better than one."""
    from scipy.optimize import nnls

    a = np.vstack(confusions)
    b = np.concatenate(shares)
    n = a.shape[1]
    weight = 1e3 * max(1.0, float(np.abs(a).max()))
    a = np.vstack([a, np.full((1, n), weight)])
    b = np.append(b, weight)
    prior, _ = nnls(a, b)
    prior = np.maximum(prior, FLOOR)
    return prior / prior.sum()


def reweighted(proba: np.ndarray, target: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Posteriors ``proba`` (sample, class) of a model trained under priors ``train``,
    re-weighted to priors ``target``: p_t(y | x) ∝ p_s(y | x) π_t(y) / π_s(y)."""
    ratio = np.maximum(target, FLOOR) / np.maximum(train, FLOOR)
    out = proba * ratio
    return out / np.maximum(out.sum(1, keepdims=True), np.finfo(float).tiny)
