"""The rows behind evaluate's DVC plots: a confusion matrix, and one-vs-rest ROC and precision-recall curves.

The curves are long tables (one row per class and grid point, a `class` column) drawn by the
`curves_by_class` template in .dvc/plots/, which gives each class its own colour and each revision its own dash.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

GRID = np.linspace(0, 1, 101)  # the x values every curve is sampled at


def confusion_rows(labels: np.ndarray, predicted: np.ndarray, names: Sequence[str]) -> list[dict[str, str]]:
    """One row per test image, for DVC's `confusion` templates (x: actual, y: predicted at the operating point)."""
    return [{"actual": names[truth], "predicted": names[guess]} for truth, guess in zip(labels, predicted, strict=True)]


def grid_rows(name: str, x_name: str, y_name: str, y_values: np.ndarray) -> list[dict[str, str | float]]:
    return [
        {"class": name, x_name: round(float(x), 4), y_name: round(float(y), 4)}
        for x, y in zip(GRID, y_values, strict=True)
    ]


Task = tuple[str, np.ndarray, np.ndarray]  # a curve's name, its truth (bool) and its scores


def class_tasks(labels: np.ndarray, probabilities: np.ndarray, names: Sequence[str]) -> list[Task]:
    """Each class against the rest, by its probability column."""
    return [(name, labels == index, probabilities[:, index]) for index, name in enumerate(names)]


def roc_rows(tasks: Sequence[Task]) -> list[dict[str, str | float]]:
    """Each task's ROC curve, TPR on a fixed FPR grid; tasks without a positive and a negative are left out."""
    rows: list[dict[str, str | float]] = []
    for name, truth, scores in tasks:
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth, scores)
        rows += grid_rows(name, "fpr", "tpr", np.interp(GRID, fpr, tpr))
    return rows


def precision_recall_rows(tasks: Sequence[Task]) -> list[dict[str, str | float]]:
    """Each task's precision-recall curve on a fixed recall grid (tasks without a positive left out).

    Precision is interpolated the usual way: at recall r, the best precision reached at any recall >= r.
    """
    rows: list[dict[str, str | float]] = []
    for name, truth, scores in tasks:
        if not truth.any():
            continue
        precision, recall, _ = precision_recall_curve(truth, scores)
        best_from = np.maximum.accumulate(precision)  # recall falls along the arrays: a prefix is recall >= r
        reached = [best_from[recall >= r][-1] for r in GRID]
        rows += grid_rows(name, "recall", "precision", np.array(reached))
    return rows
