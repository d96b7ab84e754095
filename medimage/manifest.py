"""The manifest every stage passes on: one typed row per image, read and written only here.

- interim (`data/interim/<ds>/manifest.csv`, written by restructure): where each image of the archive went;
  `originals/manifest.csv` beside it lists the originals of an augmented archive (source_split originals, no label).
- processed (`data/processed/<ds>/manifest.csv`, written by split): the same rows, with the image's path in
  the split view, the interim path it links to, and its split.

Types are converted once, on reading; the CSV columns are the dataclass fields, in order. A multi-label set
(labels from a table with several per image) adds one column per label, `label:<name>`, holding 1, 0 or nothing
(unknown: never 0); its `label` column joins the image's positive labels by `|` (empty for none), and its paths
have no label folder. An image converted from DICOM has `dicom:<what>` columns saying how (archives/dicom.py).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar

from medimage.atomic import write_csv
from medimage.errors import PipelineError
from medimage.paths import MANIFEST, METADATA, ORIGINALS

Target = int | None  # one label's value for one image: 1, 0, or None (unknown)
Targets = tuple[tuple[str, Target], ...]  # every label of a multi-label set, in sorted order, with its value
TARGET_PREFIX = "label:"  # the column of one label of a multi-label set
Made = tuple[tuple[str, str], ...]  # how a DICOM file's pixels were made (dicom.py), as (what, value)
MADE_PREFIX = "dicom:"  # the columns of Made: transfer_syntax, photometric, bits_stored, window, rows, columns
JOINED = "|"  # how a multi-label image's positive labels are joined in its `label` column


def joined_positives(targets: Targets) -> str:
    return JOINED.join(name for name, value in targets if value == 1)


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
    targets: Targets = field(default=(), kw_only=True)  # multi-label sets: the label columns, not a column itself
    made: Made = field(default=(), kw_only=True)  # a DICOM file's conversion: the `dicom:` columns

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def positives(self) -> frozenset[str]:
        """A multi-label set: the labels this image has (its `label` joins them); empty for every other set."""
        return frozenset(name for name, value in self.targets if value == 1)


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
    return [column.name for column in fields(kind) if column.name not in ("targets", "made")]


def _made(raw: dict[str, str], made_columns: list[str]) -> Made:
    return tuple((column.removeprefix(MADE_PREFIX), raw[column]) for column in made_columns if raw[column])


def _targets(raw: dict[str, str], label_columns: list[str]) -> Targets:
    return tuple(
        (column.removeprefix(TARGET_PREFIX), int(raw[column]) if raw[column] else None) for column in label_columns
    )


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
        label_columns = [column for column in reader.fieldnames or [] if column.startswith(TARGET_PREFIX)]
        made_columns = [column for column in reader.fieldnames or [] if column.startswith(MADE_PREFIX)]
        try:
            return [
                kind(
                    **{name: int(raw[name]) if name in _INTEGERS else raw[name] for name in names},
                    targets=_targets(raw, label_columns),
                    made=_made(raw, made_columns),
                )
                for raw in reader
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


def write_manifest(folder: Path, rows: Sequence[InterimRow], kind: type[InterimRow]) -> None:
    label_columns = [TARGET_PREFIX + name for name, _ in rows[0].targets] if rows else []
    made_columns = list(dict.fromkeys(MADE_PREFIX + what for row in rows for what, _ in row.made))  # DICOM sets only
    names = columns(kind)

    def cells(row: InterimRow) -> dict:  # not asdict: it deep-copies every label value (a third of a restructure)
        values = {TARGET_PREFIX + name: "" if value is None else value for name, value in row.targets}
        made = {MADE_PREFIX + what: value for what, value in row.made}
        return {name: getattr(row, name) for name in names} | values | made

    write_csv(manifest_path(folder), names + label_columns + made_columns, (cells(row) for row in rows))


def is_multi_label(rows: Sequence[InterimRow]) -> bool:
    return bool(rows and rows[0].targets)


def class_names(rows: Sequence[InterimRow]) -> list[str]:
    """The one class order used everywhere: every label present, sorted (a multi-label set's every label)."""
    if is_multi_label(rows):
        return [name for name, _ in rows[0].targets]
    return sorted({row.label for row in rows})


def read_metadata(interim: Path) -> dict[str, dict[str, str]]:
    """data/interim/<ds>/metadata.csv: interim path -> the label table's metadata cells ({} where there are none)."""
    path = interim / METADATA
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        return {row.pop("path"): row for row in csv.DictReader(handle)}
