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
often its pick is the best method on the rest of a region).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from cropmeta.errors import InputError
from cropmeta.evaluate.metrics import score

#: Folds of ``--method best``'s cross-validation when none are named (fewer when a class has
#: fewer labelled samples).
AUTOMATIC_FOLDS = 5
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
    return {name: score(y, predicted) for name, predicted in pooled.items()}


def best_method(cv_metrics: dict[str, dict[str, float]]) -> str:
    """The method with the best cross-validated macro-F1 (ties: the first in the run's order,
    the learner's before the baselines')."""
    return max(cv_metrics, key=lambda m: cv_metrics[m]["macro_f1"])
