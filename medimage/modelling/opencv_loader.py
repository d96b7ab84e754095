"""Our own image loader: NumPy batches of a split, with no TensorFlow, from its prepared pixels (data/pixels/<ds>,
`medimage.modelling.prepared`) or, for a set without them, decoded by OpenCV on a thread pool.

The class order comes from one place, `manifest.class_names()` (the labels of the processed manifest,
sorted), which the Keras loader is given too, and which train writes to models/<ds>/labels.json. The pixel rule
(`load_image`) is the prepared pixels' and predict's: large images decoded at reduced scale first
(`medimage.decoding`), OpenCV's bilinear resize on 8 bits, RGB, float32 in [0, 255]. Only one batch is held in
memory at a time (plus the one being read).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from medimage import manifest
from medimage.decoding import decode_or_fail
from medimage.modelling.pixel_rows import PixelRows


@dataclass(frozen=True)
class ImageSet:
    """The images of one split: paths, labels in class order, and their stored sizes.

    `labels` are integer class indices, or for a multi-label set an images x labels float32 matrix of 1, 0 and
    NaN (unknown)."""

    paths: list[Path]
    labels: np.ndarray
    sizes: list[tuple[int, int]]  # (width, height) from the manifest, to pick the decoding scale
    class_names: list[str]
    groups: list[str]  # patient ids ("" where unknown): the bootstrap resamples whole patients
    pixels: PixelRows | None = None  # the prepared pixels, images x size x size x 3 uint8, where read

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def multi_label(self) -> bool:
        return self.labels.ndim == 2


def class_names(processed: Path) -> list[str]:
    return manifest.class_names(manifest.read_processed(processed))


def image_set(
    processed: Path, split: str, names: list[str], rows: Sequence[manifest.ProcessedRow] | None = None
) -> ImageSet:
    """One split of the processed manifest (`rows`, where the caller has read it already)."""
    every = manifest.read_processed(processed) if rows is None else rows
    rows = [row for row in every if row.split == split]
    index = {name: position for position, name in enumerate(names)}
    if manifest.is_multi_label(every):
        labels = target_matrix(rows, names)
    else:
        labels = np.array([index[row.label] for row in rows], dtype=np.int64)
    return ImageSet(
        paths=[processed / row.path for row in rows],
        labels=labels,
        sizes=[row.size for row in rows],
        class_names=names,
        groups=[row.group for row in rows],
    )


def target_matrix(rows: Sequence[manifest.ProcessedRow], names: list[str]) -> np.ndarray:
    """Images x labels: 1, 0, NaN where the label is unknown."""
    matrix = np.full((len(rows), len(names)), np.nan, np.float32)
    for position, row in enumerate(rows):
        for column, (name, value) in enumerate(row.targets):
            if name != names[column]:
                raise ValueError(f"label {name!r} of {row.path} is not {names[column]!r}: rerun split")
            if value is not None:
                matrix[position, column] = value
    return matrix


def load_image(path: Path, size: tuple[int, int] | None, target: int) -> np.ndarray:
    """One image as float32 RGB, target x target x 3, values in [0, 255]; PipelineError names an unreadable file."""
    return load_rgb(path, size, target).astype(np.float32)


def load_rgb(path: Path, size: tuple[int, int] | None, target: int) -> np.ndarray:
    """One image as the prepared pixels hold it: uint8 RGB, target x target x 3."""
    return resized_rgb(decode_or_fail(path, size, target, colour=True), target)


def model_pixels(image: np.ndarray, target: int) -> np.ndarray:
    """A decoded BGR image as a model takes it: float32 RGB, target x target x 3, bilinear, values in [0, 255]."""
    return resized_rgb(image, target).astype(np.float32)


def resized_rgb(image: np.ndarray, target: int) -> np.ndarray:
    """A decoded 8-bit BGR image at the model's size: uint8 RGB, target x target x 3, OpenCV's bilinear resize."""
    if image.shape[:2] != (target, target):
        image = cv2.resize(image, (target, target), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def batch_order(count: int, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(count) if shuffle else np.arange(count)


def load_batch(
    images: ImageSet, indices: np.ndarray, target: int, pool: ThreadPoolExecutor
) -> tuple[np.ndarray, np.ndarray]:
    """The images at `indices` (float32, in that order) and their labels: rows of the prepared pixels, or decoded."""
    if images.pixels is not None:
        return images.pixels.rows(indices).astype(np.float32), images.labels[indices]
    pixels = list(pool.map(lambda i: load_image(images.paths[i], images.sizes[i], target), indices.tolist()))
    return np.stack(pixels), images.labels[indices]


def batches(
    images: ImageSet,
    target: int,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    threads: int = 2,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(pixels, labels) batches over the whole set, decoding the next batch while the caller uses this one."""
    order = batch_order(len(images), shuffle, seed, epoch)
    chunks = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    with ThreadPoolExecutor(max_workers=threads) as pool, ThreadPoolExecutor(max_workers=1) as ahead:
        pending = ahead.submit(load_batch, images, chunks[0], target, pool) if chunks else None
        for position in range(len(chunks)):
            current = pending.result()
            pending = (
                ahead.submit(load_batch, images, chunks[position + 1], target, pool)
                if position + 1 < len(chunks)
                else None
            )
            yield current
