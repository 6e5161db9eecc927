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
its bootstrap standard error (``macro_f1_se``), so a choice can tell a lead from noise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from cropmeta.adapt.metrics import score_predictions
from cropmeta.errors import InputError

#: Folds of ``--method best``'s cross-validation when none are named (fewer when a class has
#: fewer labelled samples).
AUTOMATIC_FOLDS = 5
#: Stratified bootstrap resamples behind a cross-validated macro-F1's standard error.
BOOTSTRAP_RESAMPLES = 200
#: ``(train, test) -> {method: predicted class indices of test}``; indices into the labels.
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


def cross_validate(
    fit_predict: FitPredict, y: np.ndarray, folds: int, seed: int
) -> dict[str, dict[str, float]]:
    """Every method's overall accuracy, macro-F1 and kappa over its out-of-fold predictions of
    the labels ``y`` (class indices), in ``folds`` stratified folds shuffled with ``seed``."""
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    pooled: dict[str, np.ndarray] = {}
    for train, test in split.split(np.zeros((len(y), 1)), y):
        for name, predicted in fit_predict(train, test).items():
            pooled.setdefault(name, np.full(len(y), -1))[test] = predicted
    return {
        name: score_predictions(y, predicted) | {"macro_f1_se": macro_f1_se(y, predicted, seed)}
        for name, predicted in pooled.items()
    }


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


def best_method(cv_metrics: dict[str, dict[str, float]]) -> str:
    """The method with the best cross-validated macro-F1 (ties: the first in the run's order,
    the learner's before the baselines')."""
    return max(cv_metrics, key=lambda m: cv_metrics[m]["macro_f1"])
