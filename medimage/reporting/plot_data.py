"""The rows behind evaluate's DVC plots: a confusion matrix and a ROC curve."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_curve

ROC_POINTS = 101


def confusion_rows(labels: np.ndarray, probabilities: np.ndarray, names: Sequence[str]) -> list[dict[str, str]]:
    """One row per test image, for DVC's `confusion` template (x: actual, y: predicted)."""
    predicted = probabilities.argmax(axis=1)
    return [{"actual": names[truth], "predicted": names[guess]} for truth, guess in zip(labels, predicted, strict=True)]


def roc_rows(labels: np.ndarray, probabilities: np.ndarray) -> list[dict[str, float]]:
    """A micro-averaged one-vs-rest ROC curve (for two classes: the second class's), on a fixed FPR grid."""
    if probabilities.shape[1] == 2:
        truth, scores = labels == 1, probabilities[:, 1]
    else:
        truth = (labels[:, None] == np.arange(probabilities.shape[1])[None, :]).ravel()
        scores = probabilities.ravel()
    if truth.all() or not truth.any():
        return []
    fpr, tpr, _ = roc_curve(truth, scores)
    grid = np.linspace(0, 1, ROC_POINTS)
    points = zip(grid, np.interp(grid, fpr, tpr), strict=True)
    return [{"fpr": round(float(x), 4), "tpr": round(float(y), 4)} for x, y in points]
