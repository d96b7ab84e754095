"""Cheap image features with OpenCV and NumPy: coarse looks, intensity histograms and dHash.

No TensorFlow here: the split audit and the dHash copy search use these.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from medimage.decoding import coarse_look, decode_or_fail

HISTOGRAM_BINS = 16


def read_grey(path: Path, width: int, height: int, target: int) -> np.ndarray:
    """A greyscale image decoded at reduced size when it is much larger than `target`; PipelineError if unreadable."""
    return decode_or_fail(path, (width, height), target, colour=False)


def look_features(grey: np.ndarray) -> np.ndarray:
    """The 16x16 coarse look and a 16-bin intensity histogram, all in [0, 1]: what a shift detector needs."""
    histogram = cv2.calcHist([grey], [0], None, [HISTOGRAM_BINS], [0, 256]).ravel()
    return np.concatenate([coarse_look(grey), histogram / max(float(histogram.sum()), 1.0)])


def dhash(grey: np.ndarray) -> int:
    """64-bit difference hash: is each pixel of the image shrunk to 9x8 brighter than its left neighbour."""
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def dhash_copy_pairs(hashes: np.ndarray, max_distance: int, chunk: int = 512) -> list[tuple[int, int]]:
    """Index pairs (i < j) whose dHashes differ in at most `max_distance` bits; all pairs, in chunks of rows."""
    values = np.asarray(hashes, dtype=np.uint64)
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(values), chunk):
        block = values[start : start + chunk]
        distances = np.bitwise_count(block[:, None] ^ values[None, :])
        rows, columns = np.nonzero(distances <= max_distance)
        rows += start
        keep = rows < columns
        pairs.extend(zip(rows[keep].tolist(), columns[keep].tolist(), strict=True))
    return pairs
