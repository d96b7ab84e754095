"""A trained model loaded for pixels, whatever its family: what predict, evaluate and the galleries hold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from medimage.modelling.opencv_loader import ImageSet


@dataclass(frozen=True)
class Classifier:
    """A trained model ready for pixels: float32 RGB in [0, 255], n x image_size x image_size x 3."""

    model: str  # train.model it was trained as, for messages
    class_names: list[str]
    image_size: int
    probabilities: Callable[[np.ndarray], np.ndarray]
    # probabilities for one split's images (rows in their order), its prepared pixels read by train.loader
    split_probabilities: Callable[[ImageSet], np.ndarray]
    # each image with the heat of the given class drawn over it (uint8 BGR); None where the family has no saliency
    overlays: Callable[[np.ndarray, np.ndarray], list[np.ndarray]] | None
    # several labels per image: `probabilities` are each label's own (sigmoid), not one distribution over classes
    multi_label: bool = False
