"""The manifest every stage passes on: one typed row per image, read and written only here.

- interim (`data/interim/<ds>/manifest.csv`, written by restructure): where each image of the archive went;
  `originals/manifest.csv` beside it lists the originals of an augmented archive (source_split originals, no label).
- processed (`data/processed/<ds>/manifest.csv`, written by split): the same rows, with the image's path in
  the split view, the interim path it links to, and its split.

Types are converted once, on reading; the CSV columns are the dataclass fields, in order.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TypeVar

from medimage.atomic import write_csv
from medimage.errors import PipelineError
from medimage.paths import MANIFEST, METADATA, ORIGINALS


@dataclass(frozen=True)
class InterimRow:
    path: str  # relative to the dataset's interim folder: <source_split>/<label>/<file>
    label: str
    source_split: str
    member: str  # path inside the archive
    sha256: str
    width: int
    height: int
    group: str  # patient id, empty where the dataset has none
    channels: int
    bytes: int
    format: str  # what the bytes are (JPEG, PNG, ...), whatever the extension says

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


@dataclass(frozen=True)
class ProcessedRow(InterimRow):
    """`path` is relative to the processed folder (<split>/<label>/<file>); `interim_path` to the interim one."""

    interim_path: str
    split: str


Row = TypeVar("Row", InterimRow, ProcessedRow)
_INTEGERS = {"width", "height", "channels", "bytes"}


def manifest_path(folder: Path) -> Path:
    return folder / MANIFEST


def columns(kind: type[InterimRow]) -> list[str]:
    return [field.name for field in fields(kind)]


def _read(folder: Path, kind: type[Row], stage: str) -> list[Row]:
    path = manifest_path(folder)
    if not path.is_file():
        raise PipelineError(f"{path} not found: run the {stage} stage first (dvc repro {stage}@<dataset>)")
    names = columns(kind)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in names if name not in (reader.fieldnames or [])]
        if missing:
            raise PipelineError(
                f"{path} lacks the column(s) {missing}: rerun the {stage} stage (dvc repro -f {stage}@<dataset>)"
            )
        try:
            return [
                kind(**{name: int(raw[name]) if name in _INTEGERS else raw[name] for name in names}) for raw in reader
            ]
        except ValueError as error:
            raise PipelineError(f"{path} line {reader.line_num}: {error}; rerun the {stage} stage") from None


def read_interim(folder: Path) -> list[InterimRow]:
    return _read(folder, InterimRow, "restructure")


def read_originals(interim: Path) -> list[InterimRow]:
    """The originals restructure kept (paths relative to `interim`); [] where the archive ships none."""
    folder = interim / ORIGINALS
    return _read(folder, InterimRow, "restructure") if manifest_path(folder).is_file() else []


def read_processed(folder: Path) -> list[ProcessedRow]:
    return _read(folder, ProcessedRow, "split")


def write_manifest(folder: Path, rows: Iterable[InterimRow], kind: type[InterimRow]) -> None:
    write_csv(manifest_path(folder), columns(kind), (asdict(row) for row in rows))


def class_names(rows: Iterable[InterimRow]) -> list[str]:
    """The one class order used everywhere: every label present, sorted."""
    return sorted({row.label for row in rows})


def read_metadata(interim: Path) -> dict[str, dict[str, str]]:
    """data/interim/<ds>/metadata.csv: interim path -> the label table's metadata cells ({} where there are none)."""
    path = interim / METADATA
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        return {row.pop("path"): row for row in csv.DictReader(handle)}
