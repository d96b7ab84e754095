"""Galleries of test images with captions: what a person looks at to see how a model fails, and where it looks."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from medimage.modelling.classifier import Classifier
from medimage.modelling.opencv_loader import ImageSet, load_image
from medimage.reporting.sheets import INK, THUMB

CELL = THUMB * 2  # tiles are drawn at this size, nearest-neighbour, so that pixels stay visible


def most_confident_mistakes(
    labels: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray, count: int
) -> list[int]:
    """Up to `count` wrongly decided images (`predicted`: the decisions at the operating point), the most probable
    wrong class first."""
    wrong = np.flatnonzero(predicted != labels)
    return wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:count].tolist()


def most_confident_correct(
    labels: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray, per_class: int
) -> list[int]:
    """Up to `per_class` correctly decided images of each class, the most confident first, class by class."""
    chosen: list[int] = []
    for index in range(probabilities.shape[1]):
        right = np.flatnonzero((labels == index) & (predicted == index))
        chosen += right[np.argsort(-probabilities[right, index], kind="stable")][:per_class].tolist()
    return chosen


def caption(names: Sequence[str], truth: int, guess: int, probabilities: np.ndarray) -> str:
    """The truth, the decision and its probability; where a threshold overruled the most probable class (two
    classes), that class's probability instead, so that the caption never pairs a decision with a low number."""
    top = int(probabilities.argmax())
    score = f"{probabilities[guess]:.2f}" if top == guess else f"({names[top]} {probabilities[top]:.2f})"
    return f"true {names[truth]}\npredicted {names[guess]} {score}"


def gallery(tiles: Sequence[np.ndarray], captions: Sequence[str], empty: str, columns: int = 4) -> np.ndarray:
    """BGR tiles with a two-line caption under each; the one-line note `empty` when there is nothing to show."""
    if not tiles:
        canvas = np.full((40, 12 + 11 * len(empty), 3), 255, np.uint8)
        cv2.putText(canvas, empty, (8, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.6, INK, 1, cv2.LINE_AA)
        return canvas
    rows = -(-len(tiles) // columns)
    cell_width, cell_height = CELL + 8, CELL + 40
    canvas = np.full((rows * cell_height, columns * cell_width, 3), 255, np.uint8)
    for index, (tile, text) in enumerate(zip(tiles, captions, strict=True)):
        top, left = (index // columns) * cell_height, (index % columns) * cell_width
        canvas[top : top + CELL, left : left + CELL] = cv2.resize(tile, (CELL, CELL), interpolation=cv2.INTER_NEAREST)
        for line, words in enumerate(text.split("\n")[:2]):
            origin = (left + 2, top + CELL + 15 + 15 * line)
            cv2.putText(canvas, words[:34], origin, cv2.FONT_HERSHEY_SIMPLEX, 0.42, INK, 1, cv2.LINE_AA)
    return canvas


def saliency_gallery(
    classifier: Classifier,
    images: ImageSet,
    probabilities: np.ndarray,
    predicted: np.ndarray,
    mistakes: int = 8,
    correct_per_class: int = 2,
) -> np.ndarray:
    """Grad-CAM overlays for the most confidently wrong images and the most confident right ones of each class.

    The heat is for the predicted class: where the model found the evidence for what it said.
    """
    if classifier.overlays is None:
        return gallery([], [], empty=f"no Grad-CAM: the {classifier.model} model has no convolutional layers")
    cases = most_confident_mistakes(images.labels, probabilities, predicted, mistakes)
    cases += most_confident_correct(images.labels, probabilities, predicted, correct_per_class)
    if not cases:
        return gallery([], [], empty="no test images")
    pixels = np.stack([load_image(images.paths[i], images.sizes[i], classifier.image_size) for i in cases])
    tiles = classifier.overlays(pixels, predicted[cases])
    names = classifier.class_names
    captions = [caption(names, images.labels[i], predicted[i], probabilities[i]) for i in cases]
    return gallery(tiles, captions, empty="no test images")
