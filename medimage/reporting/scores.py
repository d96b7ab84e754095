"""Classification scores from predicted probabilities (scikit-learn; no TensorFlow)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support


def binary_roc_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """The area under the ROC curve: the chance that a positive scores above a negative, ties counting half.

    Computed from ranks (Mann-Whitney U), exact up to one division, and without scikit-learn's input checks, which
    cost 12 ms a call: the bootstrap calls this thousands of times. None without both positives and negatives.
    """
    positive = np.asarray(positive, dtype=bool)
    positives = int(positive.sum())
    negatives = len(positive) - positives
    if not positives or not negatives:
        return None
    order = np.argsort(scores, kind="stable")
    _, first, ties = np.unique(np.asarray(scores)[order], return_index=True, return_counts=True)
    ranks = np.empty(len(order))
    ranks[order] = np.repeat(first + (ties + 1) / 2, ties)  # 1-based, tied scores share their mean rank
    return float((ranks[positive].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def macro_roc_auc(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """ROC AUC of column 1 for two columns; else the mean one-vs-rest AUC over the classes present in `labels`.

    `labels` are column indices of `probabilities`. None with fewer than two classes present (undefined).
    The one AUC of the project: the split audit's shortcut score and evaluate's test score both use it.
    """
    present = np.unique(labels)
    if len(present) < 2:
        return None
    if probabilities.shape[1] == 2:
        return binary_roc_auc(labels == 1, probabilities[:, 1])
    return float(np.mean([binary_roc_auc(labels == index, probabilities[:, index]) for index in present]))


def per_class_scores(labels: np.ndarray, predicted: np.ndarray, names: Sequence[str]) -> dict[str, dict]:
    """Precision, recall, F1 and support per class name, at the given decisions."""
    classes = np.arange(len(names))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=classes, zero_division=0)
    return {
        name: {
            "precision": round(float(precision[i]), 4),
            "recall": round(float(recall[i]), 4),
            "f1": round(float(f1[i]), 4),
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    }


def macro_f1(labels: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    return float(f1_score(labels, predicted, labels=np.arange(classes), average="macro", zero_division=0))


def known(labels: np.ndarray, column: int) -> np.ndarray:
    """A multi-label set's images whose value of the label is known (labels: 1, 0 or NaN for unknown)."""
    return ~np.isnan(labels[:, column])


def label_auc(labels: np.ndarray, probabilities: np.ndarray, column: int) -> float | None:
    """One label's ROC AUC over the images whose value of it is known."""
    rows = known(labels, column)
    return binary_roc_auc(labels[rows, column] == 1, probabilities[rows, column])


def macro_auc(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """A multi-label set's mean of the labels' ROC AUCs, over those with a known positive and negative; None
    without any."""
    values = [label_auc(labels, probabilities, column) for column in range(labels.shape[1])]
    defined = [value for value in values if value is not None]
    return float(np.mean(defined)) if defined else None
