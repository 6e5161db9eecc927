"""Accuracy figures for crop maps (scikit-learn's implementations)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score


def score(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Overall accuracy, macro-averaged F1 and Cohen's kappa."""
    return {
        "overall_accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "kappa": float(cohen_kappa_score(y_true, y_pred)),
    }
