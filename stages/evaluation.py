"""Metrics and plot data from predicted probabilities (scikit-learn, OpenCV; no TensorFlow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, precision_recall_fscore_support, roc_auc_score, roc_curve

from stages.sheets import INK, THUMB, thumbnail

ROC_POINTS = 101


def roc_auc(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """One-vs-rest macro ROC AUC over the classes present in `labels`; None with fewer than two."""
    present = np.unique(labels)
    if len(present) < 2:
        return None
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(labels, probabilities[:, 1]))
    return float(np.mean([roc_auc_score(labels == index, probabilities[:, index]) for index in present]))


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, names: Sequence[str], train_accuracy: float) -> dict:
    predicted = probabilities.argmax(axis=1)
    classes = np.arange(len(names))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=classes, zero_division=0)
    accuracy = float(accuracy_score(labels, predicted))
    auc = roc_auc(labels, probabilities)
    return {
        "accuracy": round(accuracy, 4),
        "balanced_accuracy": round(float(balanced_accuracy_score(labels, predicted)), 4),
        "macro_f1": round(float(f1_score(labels, predicted, labels=classes, average="macro", zero_division=0)), 4),
        "roc_auc": None if auc is None else round(auc, 4),
        "per_class": {
            name: {"precision": round(float(precision[i]), 4), "recall": round(float(recall[i]), 4), "f1": round(float(f1[i]), 4), "support": int(support[i])}
            for i, name in enumerate(names)
        },
        "train_accuracy": round(train_accuracy, 4),
        "generalization_gap": round(train_accuracy - accuracy, 4),
    }


def confusion_rows(labels: np.ndarray, probabilities: np.ndarray, names: Sequence[str]) -> list[dict[str, str]]:
    """One row per test image, for DVC's `confusion` template (x: actual, y: predicted)."""
    return [{"actual": names[truth], "predicted": names[guess]} for truth, guess in zip(labels, probabilities.argmax(axis=1), strict=True)]


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
    return [{"fpr": round(float(x), 4), "tpr": round(float(y), 4)} for x, y in zip(grid, np.interp(grid, fpr, tpr), strict=True)]


def most_confident_mistakes(labels: np.ndarray, probabilities: np.ndarray, count: int) -> list[int]:
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    return wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:count].tolist()


def gallery(paths: Sequence[Path], sizes: Sequence[tuple[int, int]], captions: Sequence[str], columns: int = 4) -> np.ndarray:
    """Thumbnails with a caption under each; a one-line note when there is nothing to show."""
    if not paths:
        canvas = np.full((40, 420, 3), 255, np.uint8)
        cv2.putText(canvas, "no misclassified test images", (8, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.6, INK, 1, cv2.LINE_AA)
        return canvas
    rows = -(-len(paths) // columns)
    cell_width, cell_height = THUMB * 2 + 8, THUMB * 2 + 40
    canvas = np.full((rows * cell_height, columns * cell_width, 3), 255, np.uint8)
    for index, (path, size, caption) in enumerate(zip(paths, sizes, captions, strict=True)):
        top, left = (index // columns) * cell_height, (index % columns) * cell_width
        tile = cv2.resize(thumbnail(path, *size), (THUMB * 2, THUMB * 2), interpolation=cv2.INTER_NEAREST)
        canvas[top : top + THUMB * 2, left : left + THUMB * 2] = tile
        for line, text in enumerate(caption.split("\n")[:2]):
            cv2.putText(canvas, text[:34], (left + 2, top + THUMB * 2 + 15 + 15 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.42, INK, 1, cv2.LINE_AA)
    return canvas
