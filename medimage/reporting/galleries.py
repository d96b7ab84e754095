"""Galleries of test images with captions: what a person looks at to see how a model fails."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from medimage.reporting.sheets import INK, THUMB, thumbnail


def most_confident_mistakes(labels: np.ndarray, probabilities: np.ndarray, count: int) -> list[int]:
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    return wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:count].tolist()


def gallery(
    paths: Sequence[Path], sizes: Sequence[tuple[int, int]], captions: Sequence[str], columns: int = 4
) -> np.ndarray:
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
            origin = (left + 2, top + THUMB * 2 + 15 + 15 * line)
            cv2.putText(canvas, text[:34], origin, cv2.FONT_HERSHEY_SIMPLEX, 0.42, INK, 1, cv2.LINE_AA)
    return canvas
