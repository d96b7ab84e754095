"""Contact sheets: a few thumbnails per label and split, in one PNG, so a person can eyeball a split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from medimage.atomic import atomic_file
from medimage.decoding import decode_reduced
from medimage.manifest import ProcessedRow
from medimage.settings.split import SPLIT_NAMES

THUMB = 96
TITLE = 28
LABEL_WIDTH = 150
BACKGROUND = 255
INK = (40, 40, 40)


def thumbnail(path: Path, width: int, height: int) -> np.ndarray:
    """The image fitted into a THUMB x THUMB tile (a grey tile when it cannot be decoded)."""
    image = decode_reduced(path, (width, height), THUMB, colour=True)
    if image is None:
        return np.full((THUMB, THUMB, 3), 200, np.uint8)
    scale = THUMB / max(image.shape[:2])
    new_size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    resized = cv2.resize(image, new_size, interpolation=cv2.INTER_AREA)
    tile = np.full((THUMB, THUMB, 3), BACKGROUND, np.uint8)
    tile[: resized.shape[0], : resized.shape[1]] = resized
    return tile


NO_LABEL = "(no label)"  # a multi-label image positive for none of its labels


def sheet_lines(row: ProcessedRow) -> set[str]:
    """The contact sheet's rows an image belongs in: its label, or each label a multi-label image is positive for."""
    if not row.targets:
        return {row.label}
    return {name for name, value in row.targets if value == 1} or {NO_LABEL}


def contact_sheet(rows: Sequence[ProcessedRow], root: Path, per_label: int = 4) -> np.ndarray:
    """One panel per split (rows: labels; columns: the first `per_label` images by path), panels side by side. A
    multi-label set has a row per label, of images positive for it, and one of images with no label."""
    splits = [name for name in SPLIT_NAMES if any(row.split == name for row in rows)]
    lines_of = {row.path: sheet_lines(row) for row in rows}
    found = set().union(*lines_of.values())
    labels = sorted(found - {NO_LABEL}) + sorted(found & {NO_LABEL})  # images with no label last
    panels = []
    for split in splits:
        panel = np.full((TITLE + len(labels) * (THUMB + 4), per_label * (THUMB + 4), 3), BACKGROUND, np.uint8)
        cv2.putText(panel, split, (4, TITLE - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.7, INK, 2, cv2.LINE_AA)
        for line, label in enumerate(labels):
            members = (row for row in rows if row.split == split and label in lines_of[row.path])
            for column, row in enumerate(sorted(members, key=lambda row: row.path)[:per_label]):
                top, left = TITLE + line * (THUMB + 4), column * (THUMB + 4)
                panel[top : top + THUMB, left : left + THUMB] = thumbnail(root / row.path, row.width, row.height)
        panels.append(panel)
        panels.append(np.full((panel.shape[0], 12, 3), BACKGROUND, np.uint8))
    names = np.full((TITLE + len(labels) * (THUMB + 4), LABEL_WIDTH, 3), BACKGROUND, np.uint8)
    for line, label in enumerate(labels):
        origin = (4, TITLE + line * (THUMB + 4) + THUMB // 2)
        cv2.putText(names, label[:16], origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, INK, 1, cv2.LINE_AA)
    return np.hstack([names, *panels])


def write_png(destination: Path, picture: np.ndarray) -> None:
    with atomic_file(destination) as temporary:
        temporary.write_bytes(cv2.imencode(".png", picture)[1].tobytes())
