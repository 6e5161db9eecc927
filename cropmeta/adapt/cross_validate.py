"""Cross-validation on the labelled fields: how every method would do on a region, from the
user's labels alone.

In production a user has only the handful of fields they labelled, and no held-out set to tell
whether the meta-learner or a baseline (source-only, transfer, a random forest) suits their
region best. Stratified K-fold cross-validation over those fields gives an estimate: each
method is fitted K times on all folds but one and predicts the one left out, and the pooled
out-of-fold predictions are scored (as scikit-learn's ``cross_val_predict``). With 5 fields a
class the estimate is noisy; it is pessimistic for the methods that learn from the fields (each
fit sees 4 of the 5) and not for source-only, which learns nothing from them; and it is scored
on class-balanced fields where a region's crops rarely are. Read it as a ranking with wide
error bars, not as the accuracy of the final model (benchmarks/cv_selection.py measures how
often its pick is the best method on the rest of a region). Each method's macro-F1 comes with
its bootstrap standard error (``macro_f1_se``), so a choice can tell a lead from noise. With the
region's unlabelled samples the class-balance bias is removed: the region's class shares are
estimated from the fold models (:class:`PriorShift`) and every held-out field is weighted by its
class's share (:func:`weighted_scores`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from cropmeta.adapt.label_shift import bbse_priors, confusion, reweighted
from cropmeta.adapt.metrics import score_predictions
from cropmeta.adapt.names import SEPARATOR
from cropmeta.errors import InputError

#: The smallest region share a labelled class is given in the weighted scores.
WEIGHT_FLOOR = 0.005
#: Folds of ``--method best``'s cross-validation when none are named (fewer when a class has
#: fewer labelled samples).
AUTOMATIC_FOLDS = 5
#: Stratified bootstrap resamples behind a cross-validated macro-F1's standard error.
BOOTSTRAP_RESAMPLES = 200
#: ``(train, test) -> {method: its class probabilities (row, class) of the test samples, then
#: of the unlabelled samples}`` (or predicted class indices, one per row); indices into the labels.
FitPredict = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]


def check_folds(y: np.ndarray, folds: int, names: list[str], region: str | Path) -> None:
    """Refuse ``folds`` when a class has fewer labelled samples (a fold would lack it)."""
    counts = np.bincount(y, minlength=len(names))
    small = int(counts.argmin())
    if counts[small] < folds:
        raise InputError(
            region,
            f"cross-validation in {folds} folds needs {folds} labelled samples of every class; "
            f"{names[small]} has {counts[small]}",
        )


@dataclass
class PriorShift:
    """What cross-validation needs to score methods for the region rather than for the balanced
    support (importance-weighted cross-validation under label shift): the number of unlabelled
    samples whose predictions follow the test samples' in every fold, and each method's
    training priors (``train_prior``). ``prior``, the region's class priors, is estimated from
    them (:func:`~cropmeta.adapt.label_shift.bbse_priors`) unless given (``evaluate``: one
    estimate serves every learner of a draw)."""

    n_unlabelled: int
    train_prior: Callable[[str], np.ndarray]
    prior: np.ndarray | None = None


def cross_validate(
    fit_predict: FitPredict,
    y: np.ndarray,
    folds: int,
    seed: int,
    shift: PriorShift | None = None,
) -> dict[str, dict[str, float]]:
    """Every method's overall accuracy, macro-F1 and kappa over its out-of-fold predictions of
    the labels ``y`` (class indices), in ``folds`` stratified folds shuffled with ``seed``.

    With ``shift`` the region's class priors are estimated by black-box shift estimation from
    the fold models' confusion on the support and their predictions of the unlabelled samples
    (unless given), and every method gets two more figures, ``weighted_accuracy`` and
    ``weighted_macro_f1``: its out-of-fold predictions scored with each sample weighted by its
    class's estimated region share over its support share (Sugiyama, Krauledat & Müller 2007,
    "Covariate shift adaptation by importance weighted cross validation", JMLR 8; here the
    shift is in the labels) — what the method would score on the region, not on balanced
    folds. Each method's ``<method>+bbse`` (its posteriors re-weighted to those priors) is
    scored beside it."""
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    n_classes = int(y.max()) + 1
    extra = 0 if shift is None else shift.n_unlabelled
    held_out: dict[str, np.ndarray] = {}
    shares: dict[str, list[np.ndarray]] = {}
    for train, test in split.split(np.zeros((len(y), 1)), y):
        for name, out in fit_predict(train, test).items():
            proba = as_proba(out, n_classes)
            held_out.setdefault(name, np.zeros((len(y), n_classes)))[test] = proba[: len(test)]
            if extra:
                guess = proba[len(test) :].argmax(1)
                shares.setdefault(name, []).append(np.bincount(guess, minlength=n_classes))
    guesses = {name: proba.argmax(1) for name, proba in held_out.items()}
    if shift is not None and extra:
        if shift.prior is None:
            confusions = [confusion(y, guesses[m], n_classes) for m in shares]
            predicted = [np.sum(shares[m], 0) / (extra * len(shares[m])) for m in shares]
            shift.prior = bbse_priors(confusions, predicted)
        for name, proba in held_out.items():
            corrected = reweighted(proba, shift.prior, shift.train_prior(name))
            guesses[f"{name}{SEPARATOR}bbse"] = corrected.argmax(1)
    metrics = {}
    for name, guess in guesses.items():
        metrics[name] = score_predictions(y, guess) | {"macro_f1_se": macro_f1_se(y, guess, seed)}
        if shift is not None and shift.prior is not None:
            metrics[name] |= weighted_scores(y, guess, shift.prior)
    return metrics


def as_proba(out: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities (row, class) from a method's output: probabilities as they are,
    predicted class indices as one-hot rows."""
    out = np.asarray(out)
    return out if out.ndim == 2 else np.eye(n_classes)[out]


def weighted_scores(y: np.ndarray, guess: np.ndarray, prior: np.ndarray) -> dict[str, float]:
    """Overall accuracy and macro-F1 of ``guess`` with every sample weighted by its class's
    share ``prior`` in the region over its share of ``y``: the figures expected on the region
    under label shift. A class keeps at least :data:`WEIGHT_FLOOR` of the region (it was
    labelled there)."""
    from sklearn.metrics import f1_score

    n = len(prior)
    support = np.bincount(y, minlength=n) / len(y)
    weight = (np.maximum(prior, WEIGHT_FLOOR) / np.maximum(support, 1e-12))[y]
    accuracy = float(np.sum(weight * (guess == y)) / weight.sum())
    f1 = f1_score(y, guess, labels=np.unique(y), average="macro", sample_weight=weight,
                  zero_division=0)  # fmt: skip
    return {"weighted_accuracy": round(accuracy, 4), "weighted_macro_f1": round(float(f1), 4)}


def macro_f1_se(
    y: np.ndarray, predicted: np.ndarray, seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> float:
    """Standard error of the macro-F1 of ``predicted`` against ``y``: its spread over bootstrap
    resamples of the samples drawn class by class, so every resample keeps the classes' counts
    (Efron & Tibshirani 1993, ch. 6). Vectorised over the resamples (scikit-learn's
    ``f1_score`` per resample costs ~1 ms, ~4 s per cross-validation); the macro average runs
    over the classes present in the labels or the predictions, as scikit-learn's does."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(y == c) for c in np.unique(y)]
    picks = np.concatenate([rng.choice(m, size=(resamples, len(m))) for m in members], axis=1)
    truth, guess = y[picks], predicted[picks]
    n = int(max(y.max(), predicted.max())) + 1
    offset = np.arange(resamples)[:, None] * n  # one block of class counts per resample

    def counts(index: np.ndarray, hits: np.ndarray | None = None) -> np.ndarray:
        flat = np.bincount((offset + index).ravel(), hits, minlength=resamples * n)
        return flat.reshape(resamples, n)

    true_positives = counts(truth, (truth == guess).ravel().astype(float))
    both = counts(truth) + counts(guess)  # 2 TP + FP + FN
    f1 = np.divide(2 * true_positives, both, out=np.full(both.shape, np.nan), where=both > 0)
    return float(np.nanmean(f1, axis=1).std(ddof=1))


def criterion(metrics: dict[str, float]) -> float:
    """What ``--method best`` ranks methods by: the mean of the importance-weighted overall
    accuracy and macro-F1 (:func:`weighted_scores`) where the region's priors were estimated,
    else the macro-F1 on the balanced folds."""
    if "weighted_accuracy" in metrics:
        return (metrics["weighted_accuracy"] + metrics["weighted_macro_f1"]) / 2
    return metrics["macro_f1"]


def best_method(cv_metrics: dict[str, dict[str, float]]) -> str:
    """The method ranked first by :func:`criterion` (ties: the first in the run's order, the
    learner's before the baselines')."""
    return max(cv_metrics, key=lambda m: criterion(cv_metrics[m]))
