"""A split's prepared pixels on disk: one NumPy .npy file of uint8 images x size x size x 3, written and read a row
(an image) at a time.

Rows are read with `os.preadv` into the batch's own buffer, not through a memory map: the pages of a map that a
process touches count in its resident memory, so one epoch over 112,120 images at 224 px would show 17 GB; read
this way they stay in the kernel's page cache, which it reclaims, and the process holds a batch. The file is
written in order, never mapped, for the same reason. `np.load` reads it too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np


class PixelRows:
    """The images of one prepared .npy file, read by index; safe to share between threads (no file position)."""

    def __init__(self, path: Path) -> None:
        with path.open("rb") as header:
            version = np.lib.format.read_magic(header)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran_order, dtype = read(header)
            self.offset = header.tell()
        if dtype != np.uint8 or fortran_order or len(shape) != 4:
            raise ValueError(f"{path} is not an images x size x size x channels uint8 array")
        self.path, self.shape = path, tuple(shape)
        self.row_bytes = int(np.prod(shape[1:]))
        self.descriptor = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __del__(self) -> None:
        if hasattr(self, "descriptor"):
            os.close(self.descriptor)

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """The images at `indices`, in that order, as a new uint8 array."""
        batch = np.empty((len(indices), *self.shape[1:]), np.uint8)
        for position, index in enumerate(np.asarray(indices).tolist()):
            if not 0 <= index < self.shape[0]:
                raise IndexError(f"image {index} of {self.shape[0]} in {self.path}")
            if os.preadv(self.descriptor, [batch[position]], self.offset + index * self.row_bytes) != self.row_bytes:
                raise OSError(f"{self.path} is shorter than its header says: run dvc repro pixels again")
        return batch


def write_rows(destination: Path, count: int, side: int, images: Iterable[np.ndarray]) -> None:
    """`count` images of side x side x 3 uint8, in order, as a .npy file."""
    with destination.open("wb") as out:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False}
        np.lib.format.write_array_header_1_0(out, {**header, "shape": (count, side, side, 3)})
        written = 0
        for image in images:
            if image.shape != (side, side, 3) or image.dtype != np.uint8:
                raise ValueError(f"image {written} of {destination} is {image.shape} {image.dtype}")
            out.write(np.ascontiguousarray(image).data)
            written += 1
    if written != count:
        raise ValueError(f"{destination} got {written} images, not {count}")
