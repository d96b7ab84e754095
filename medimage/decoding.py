"""Decode an image with OpenCV at the smallest size that still serves the target: libjpeg's DCT scaling.

When an image is at least twice the target size, it is decoded at 1/2, 1/4 or 1/8 scale directly, which is
several times faster than a full decode and a resize. The audit's features, the OpenCV loader and the
contact sheets all decode through here, so they agree on the pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from medimage.errors import PipelineError
from medimage.paths import INTERIM_DIR, PROCESSED_DIR

# cv2.imread flags by reduction factor, for colour (BGR) and greyscale decoding.
_REDUCED_FLAGS = {
    True: {
        1: cv2.IMREAD_COLOR,
        2: cv2.IMREAD_REDUCED_COLOR_2,
        4: cv2.IMREAD_REDUCED_COLOR_4,
        8: cv2.IMREAD_REDUCED_COLOR_8,
    },
    False: {
        1: cv2.IMREAD_GRAYSCALE,
        2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
        4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
        8: cv2.IMREAD_REDUCED_GRAYSCALE_8,
    },
}


def reduction_factor(width: int, height: int, target: int) -> int:
    """The largest of 1, 2, 4, 8 that still leaves the shorter side at least `target` pixels."""
    factor = 1
    while factor < 8 and min(width, height) // (factor * 2) >= target:
        factor *= 2
    return factor


def decode_reduced(path: Path, size: tuple[int, int] | None, target: int, colour: bool) -> np.ndarray | None:
    """The image (BGR or grey) decoded at reduced scale for a `target`-pixel use; None if OpenCV cannot decode it.

    `size` is the stored (width, height); None decodes at full size. OSError when the file cannot be read.
    """
    # imdecode, not imread: cv2.imread mangles non-ASCII paths on some builds
    return decode_reduced_bytes(np.fromfile(path, np.uint8), size, target, colour)


def decode_reduced_bytes(
    data: np.ndarray, size: tuple[int, int] | None, target: int, colour: bool
) -> np.ndarray | None:
    """decode_reduced of bytes in memory (a DICOM file's PNG, made as restructure makes it)."""
    factor = reduction_factor(*size, target) if size else 1
    return cv2.imdecode(data, _REDUCED_FLAGS[colour][factor])


def restore_hint(path: Path) -> str:
    """How to get a damaged pipeline file back: DVC restores the output folder that holds it.

    A file of the split view is a hardlink of an interim file: damage in place is damage to the interim output
    (and to DVC's cache copy, when the cache links rather than copies).
    """
    output = path.parents[2] if len(path.parents) > 3 else path.parent  # <output>/<split>/<label>/<file>
    if output.parent.as_posix().endswith(PROCESSED_DIR.as_posix()):
        output = output.parent.parent / INTERIM_DIR.name / output.name
    return (
        f"restore it with: dvc checkout --force {output} "
        f"(or dvc repro -f restructure@{output.name} if DVC's cache copy is damaged too)"
    )


def decode_or_fail(path: Path, size: tuple[int, int] | None, target: int, colour: bool) -> np.ndarray:
    """Like `decode_reduced`, but a PipelineError naming the file when it cannot be read or decoded."""
    try:
        image = decode_reduced(path, size, target, colour)
    except OSError as error:
        raise PipelineError(f"cannot read image {path} ({error.strerror}); {restore_hint(path)}") from None
    if image is None:
        raise PipelineError(f"cannot decode image {path}: the file is corrupt or not an image; {restore_hint(path)}")
    return image


def coarse_look(grey: np.ndarray, size: int = 16) -> np.ndarray:
    """The grey image shrunk to size x size by area averaging, flattened to floats in [0, 1]: its coarse look, a
    feature of the split audit (shift) and of the scikit-learn model."""
    return cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32).ravel() / 255.0
