"""What fetch reads: params.yaml `fetch`, and each dataset's origin and its offline synthetic stand-in."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from medimage.settings.files import DatasetEntry, StageParams, Strict


class SyntheticSettings(Strict):
    images_per_class: int = Field(100, ge=1, le=100_000)
    image_size: int = Field(64, ge=16, le=4096)
    seed: int = Field(0, ge=0, lt=2**32)  # NumPy, TensorFlow and scikit-learn take 32 bits


class FetchSettings(Strict):
    source: Literal["synthetic", "path", "kaggle"] = "synthetic"
    paths: dict[str, str] = {}
    synthetic: SyntheticSettings = SyntheticSettings()


class Acquisition(Strict):
    """How one archive split was 'acquired': the synthetic generator applies it to every image of that split."""

    contrast: float = Field(1.0, gt=0)
    brightness: float = 0.0
    size: float = Field(1.0, gt=0)


class CopyRule(Strict):
    """A second copy of every image under another prefix (e.g. chest_xray/chest_xray/)."""

    source: str
    target: str


class SyntheticTable(Strict):
    """A label table written beside the images (HAM10000_metadata.csv): one row per image of `splits`."""

    member: str
    columns: dict[str, str]  # column -> its cell's template: the file name's fields and {stem}, the file's stem
    splits: list[str] | None = None  # archive splits whose images have a row (the others ship unlabelled); None: all
    with_findings: bool = False  # a row per finding of each image (a localisation table such as NIH's boxes)
    rows: dict[str, PositiveInt] = {}  # label -> rows per image (RSNA's boxes: several a positive image)


class SyntheticFindings(Strict):
    """Several labels per image (NIH ChestX-ray14): each drawn independently at its real prevalence, each with a
    shape of its own in the image; {findings} in a table cell joins them (or names `none`)."""

    prevalence: dict[str, float]  # label -> share of images that have it
    none: str = "No Finding"
    separator: str = "|"
    lists: dict[str, float] = {}  # member -> share of patients whose image names it lists (official split lists)


class SyntheticSpec(Strict):
    """How to fake the real archive offline: same member paths, names and quirks; fewer, smaller images."""

    counts: dict[str, dict[str, int]]  # archive split name -> label -> image count in the real archive
    member: str  # e.g. "chest_xray/{split}/{label}/{name}"
    # label (or "*") -> file name templates, used in turn; or {first n: templates} when the scheme changes with n
    names: dict[str, list[str] | dict[int, list[str]]]
    start: int = 1  # first value of {n}
    # {n} and {patient} restart for each archive split and label, or run on through the archive (labels in a table)
    numbering: Literal["per_label", "archive"] = "per_label"
    fields: dict[str, dict[str, str]] = {}  # split or label -> extra template fields
    images_per_patient: int = Field(1, ge=1)  # {patient} recurs for this many consecutive images
    sources_per_label: int | None = Field(None, ge=1)  # images are augmentations of this many originals
    originals: str | None = None  # member of each original ({n}: its number), written beside the class images
    cells: int = Field(0, ge=0)  # small ringed discs drawn on every image: a blood smear's red cells
    channels: Literal[1, 3] = 1
    tint: tuple[float, float, float] | None = None  # BGR factors for colour images (stained cells); None: grey as RGB
    rgb_fraction: dict[str, float] = {}  # "split/label" -> share of 3-channel images
    aspect: float = Field(1.0, gt=0)  # width / height
    scale: float = Field(1.0, gt=0)  # image height in fetch.synthetic.image_size (keypoints need the real size)
    size_jitter: float = Field(0.0, ge=0, lt=1)
    label_size: dict[str, float] = {}  # label -> size factor (a metadata shortcut, as in the real data)
    acquisition: dict[str, Acquisition] = {}  # archive split -> acquisition differences
    copies: list[CopyRule] = []
    appledouble: str | None = None  # prefix under which "._<name>" companions are written
    masks: CopyRule | None = None  # a mask image per image, its member path made by prefix replacement
    extras: list[str] = []  # non-image members ({label} expands per label)
    table: SyntheticTable | None = None  # labels in a table instead of folders
    more_tables: list[SyntheticTable] = []  # other tables beside it (boxes, metadata)
    findings: SyntheticFindings | None = None  # several labels per image (counts then name one label each split)
    dicom: dict[str, str] = {}  # tag keyword -> its value's template, set in every .dcm image (RSNA's header)

    @model_validator(mode="after")
    def _every_label_has_names(self) -> SyntheticSpec:
        labels = {label for per_split in self.counts.values() for label in per_split}
        missing = [label for label in sorted(labels) if label not in self.names and "*" not in self.names]
        if missing:
            raise ValueError(f"synthetic.names has no file name template for {missing}")
        return self

    def name_templates(self, label: str, n: int) -> list[str]:
        rule = self.names.get(label) or self.names["*"]
        if isinstance(rule, list):
            return rule
        reached = [first for first in rule if first <= n]
        return rule[max(reached) if reached else min(rule)]


class FetchEntry(DatasetEntry):
    kaggle: str | None  # owner/slug/versions/N; null off Kaggle, or for a competition (no versions to pin)
    archive: str  # the file name Kaggle's CLI gives the download (or the local archive's name)
    # null: params.yaml's fetch.source; synthetic | path (params.yaml fetch.paths.<ds>) | kaggle for this dataset alone
    fetch: Literal["synthetic", "path", "kaggle"] | None
    synthetic: SyntheticSpec | None  # the offline stand-in; null for a dataset used only with real downloads

    @field_validator("kaggle")
    @classmethod
    def _pinned_handle(cls, handle: str | None) -> str | None:
        if handle is not None and not re.fullmatch(r"[\w.-]+/[\w.-]+/versions/\d+", handle):
            raise ValueError(f"{handle!r} must be owner/slug/versions/N (a pinned version)")
        return handle

    @model_validator(mode="after")
    def _kaggle_fetch_has_a_handle(self) -> FetchEntry:
        if self.fetch == "kaggle" and self.kaggle is None:
            raise ValueError("fetch: kaggle needs a kaggle handle (owner/slug/versions/N)")
        return self


class FetchParams(StageParams):
    fetch: FetchSettings = FetchSettings()
