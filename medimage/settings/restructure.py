"""What restructure reads: params.yaml `restructure` (limits on archives), and each dataset's layout and labels."""

from __future__ import annotations

import codecs
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from medimage.settings.files import DatasetEntry, StageParams, Strict


class DicomSettings(Strict):
    """How DICOM files become images (medimage/archives/dicom.py)."""

    # file: the file's own window or VOI LUT (a percentile window where it has none); percentile: 0.5-99.5 %
    # of the image's values; none: its minimum to its maximum
    window: Literal["file", "percentile", "none"] = "file"
    bits: Literal[8, 16] = 8  # of the PNG written: 8, or 16 to keep a 12-16-bit file's grey levels
    frames: Literal["skip", "first"] = "skip"  # multi-frame files: skipped with the reason, or their first frame


class RestructureSettings(Strict):
    on_corrupt: Literal["skip", "fail"] = "skip"
    max_member_mb: float = Field(256, gt=0)
    max_total_gb: float = Field(16, gt=0)
    max_ratio: float = Field(100, gt=1)
    max_members: int = Field(1_000_000, ge=1)
    dicom: DicomSettings = DicomSettings()


class JoinedTable(Strict):
    """A second table of the archive, matched to the label table's images by id (ISIC 2019's metadata table)."""

    table: str
    id_column: str


Policy = Literal["ignore", "positive", "negative"]


class MultiLabel(Strict):
    """Several labels per image (NIH ChestX-ray14, CheXpert, ODIR): every label's value is 1, 0 or unknown."""

    separator: str = "|"  # label_column and per_image cells: the labels of one image joined by this
    # values (label_column, per_image) or one_hot columns that mean no finding at all: never a label of their own
    none: list[str] = []
    # one_hot cells coded -1 (CheXpert's uncertain), and blank cells: ignore (unknown: masked in the loss, left out
    # of that label's scores), positive or negative
    uncertain: Policy = "ignore"
    blank: Policy = "negative"

    @field_validator("separator")
    @classmethod
    def _visible_separator(cls, separator: str) -> str:
        if not separator.strip():
            raise ValueError("the separator must hold a visible character (|, ;, , or the full-width comma)")
        return separator


class LabelTable(Strict):
    """Labels from a table inside the archive instead of from folder names (HAM10000, APTOS, ISIC 2019, ...)."""

    table: str  # member path of the CSV, TSV or XLSX (first sheet; the first row names the columns)
    id_column: str  # names each image: its file name, with or without the extension, in any folder of the layout
    label_column: str | None = None  # one label per row (numbers are fine: name them in `names`)
    one_hot: list[str] = []  # or one column per label holding 1/0 (or scores): the label is the column at the maximum
    group_column: str | None = None  # patient or lesion id: kept in one split like group_regex; empty cell: own group
    split_column: str | None = None  # the archive's own split per row (through split_map)
    split_lists: dict[str, str] = {}  # or archive split -> member listing its image names, one per line
    # label value -> readable name (APTOS 0: no_dr), for folders, reports and plots; with multi_label several values
    # may share a name (ODIR's keywords -> its classes)
    names: dict[str, str] = {}
    # more columns carried per image into data/interim/<ds>/metadata.csv (sex, age, site): the report's subgroups
    metadata: list[str] = []
    encoding: str = "utf-8"  # of the tables and the split lists (UTF-8 may carry a byte order mark)
    # where group_column and metadata columns are in a second table: that table and its image id column
    join: JoinedTable | None = None
    # or, for rows that name several images (ODIR's two eyes): id column -> that image's own label column;
    # id_column is then the first of them, and group_column names the row (ODIR's ID) so its images stay together
    per_image: dict[str, str] = {}
    more_tables: list[str] = []  # tables with the same columns labelling more images (CheXpert's valid.csv)
    multi_label: MultiLabel | None = None  # null: one label per image (several are refused)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown text encoding {encoding!r} (e.g. utf-8, cp1252, latin-1)") from None
        return encoding

    @field_validator("names", mode="before")
    @classmethod
    def _values_as_text(cls, names: object) -> object:
        # YAML reads `0: no_dr` with an integer key; table cells are text
        return {str(raw): str(name) for raw, name in names.items()} if isinstance(names, dict) else names

    @model_validator(mode="after")
    def _one_way_to_label_and_split(self) -> LabelTable:
        if sum((self.label_column is not None, bool(self.one_hot), bool(self.per_image))) != 1:
            raise ValueError("give one of label_column, one_hot (a list of columns) or per_image")
        if self.split_column and self.split_lists:
            raise ValueError("give split_column or split_lists, not both")
        return self


class RestructureEntry(DatasetEntry):
    # member path patterns ending in {file}: {split}, {label} match one folder, * part of one, ** any folders
    layout: list[str] = Field(min_length=1)
    # Required even when empty: dvc.yaml tracks each of these keys, and DVC needs them present.
    extensions: list[str]  # file extensions taken as images (case-insensitive)
    ignore: list[str]  # members to leave out (nested copies, AppleDouble files, masks, ...)
    split_map: dict[str, str]  # archive split name -> our name; unmapped names are lower-cased
    group_regex: str | None  # on the file name; its capture group 1 is the group (patient) id
    labels: LabelTable | None  # null: labels are folder names ({label} in the layout)
    # member pattern ending in {file} of the originals the class images were made from (augmented archives), or
    # null: restructure keeps them apart, split groups every image with the original it matches
    sources: str | None

    @field_validator("layout")
    @classmethod
    def _layout_ends_in_file(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not pattern.endswith("{file}"):
                raise ValueError(f"layout {pattern!r} must end with {{file}}")
        return patterns

    @model_validator(mode="after")
    def _labels_from_folders_or_a_table(self) -> RestructureEntry:
        for pattern in self.layout:
            if self.labels is None and "{label}" not in pattern:
                raise ValueError(f"layout {pattern!r} needs {{label}} (or labels from a table: key labels)")
            if self.labels is not None and "{label}" in pattern:
                raise ValueError(
                    f"layout {pattern!r} has {{label}}, but labels come from the table {self.labels.table}"
                )
        return self

    @field_validator("sources")
    @classmethod
    def _sources_name_only_the_file(cls, pattern: str | None) -> str | None:
        if pattern is not None and (not pattern.endswith("{file}") or "{label}" in pattern or "{split}" in pattern):
            raise ValueError(f"{pattern!r} must end with {{file}} and hold no {{label}} or {{split}}")
        return pattern

    @field_validator("group_regex")
    @classmethod
    def _regex_with_group(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                compiled = re.compile(pattern)
            except re.error as error:
                raise ValueError(f"not a valid regular expression: {error}") from None
            if compiled.groups < 1:
                raise ValueError("needs one capture group, e.g. 'person(\\d+)_'")
        return pattern


class RestructureParams(StageParams):
    restructure: RestructureSettings = RestructureSettings()
