"""Accuracy figures for crop maps (scikit-learn's implementations)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, f1_score


def score_predictions(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Overall accuracy, macro-averaged F1 and Cohen's kappa."""
    return {
        "overall_accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "kappa": float(cohen_kappa_score(y_true, y_pred)),
    }


def class_details(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, list]:
    """Per-class F1 and the confusion matrix (rows: true class, columns: predicted), over
    class indices 0..n_classes-1."""
    labels = np.arange(n_classes)
    return {
        "per_class_f1": f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
        .round(5)
        .tolist(),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
