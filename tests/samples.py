"""Small made-up inputs the tests share: image bytes, zip archives and a toy registry entry."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import cv2
import numpy as np

from medimage.manifest import InterimRow, Targets
from medimage.settings.project import DatasetSpec

TOY = DatasetSpec.model_validate(
    {
        "name": "toy",
        "kaggle": "someone/toy/versions/1",
        "archive": "toy.zip",
        "fetch": None,
        "layout": ["root/{split}/{label}/{file}"],
        "extensions": [".jpg", ".jpeg", ".png"],
        "ignore": ["._*"],
        "split_map": {},
        "group_regex": None,
        "labels": None,
        "sources": None,
        "synthetic": None,
        "split": {},
    }
)


def jpeg_bytes(size: tuple[int, int] = (24, 32), value: int = 128, channels: int = 1) -> bytes:
    shape = (size[0], size[1]) if channels == 1 else (size[0], size[1], channels)
    image = np.full(shape, value, np.uint8)
    image[: size[0] // 2] = 255 - value
    return cv2.imencode(".jpg", image)[1].tobytes()


def png_bytes(size: tuple[int, int] = (24, 32), value: int = 90) -> bytes:
    return cv2.imencode(".png", np.full(size, value, np.uint8))[1].tobytes()


def write_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def interim_row(path: str, label: str, source_split: str, sha256: str, group: str, targets: Targets = ()) -> InterimRow:
    """A manifest row holding what the splitter reads; its size, format and archive member made up."""
    return InterimRow(path, label, source_split, path, sha256, 32, 24, group, 1, 100, "PNG", targets=targets)
