"""The params schema: `params.yaml` and the dataset registry (`datasets/<ds>.yaml`), validated once per stage.

Every stage calls `load_params()` (and `load_dataset()`) first; a bad value stops it before it touches any
output, with a message naming the file and the key. params.yaml is where a default lives: every default below
equals its params.yaml value (tests/test_params.py fails naming the key when one drifts), so that code that
builds settings without a file (tests, benchmarks) sees what a run sees.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medimage.errors import PipelineError

PARAMS_FILE = "params.yaml"
DATASETS_DIR = "datasets"
DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


class Strict(BaseModel):
    """Unknown keys are errors: a typo in params.yaml must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- params.yaml


class SyntheticSettings(Strict):
    images_per_class: int = Field(100, ge=1, le=100_000)
    image_size: int = Field(64, ge=16, le=4096)
    seed: int = Field(0, ge=0)


class FetchSettings(Strict):
    source: Literal["synthetic", "path", "kaggle"] = "synthetic"
    paths: dict[str, str] = {}
    synthetic: SyntheticSettings = SyntheticSettings()


class RestructureSettings(Strict):
    on_corrupt: Literal["skip", "fail"] = "skip"
    max_member_mb: float = Field(256, gt=0)
    max_total_gb: float = Field(16, gt=0)
    max_ratio: float = Field(100, gt=1)
    max_members: int = Field(1_000_000, ge=1)


SPLIT_NAMES = ("train", "val", "test")


class SplitSettings(Strict):
    strategy: Literal["keep", "merge", "pool"] = "pool"
    ratios: dict[str, float] = {"train": 0.7, "val": 0.1, "test": 0.2}  # pool: the new splits and their shares
    seed: int = Field(42, ge=0)
    stratify: bool = True  # pool: keep each label's share the same in every split
    group: bool = True  # pool: all images of one patient in one split, where the dataset has patient ids
    rename: dict[str, str] = {}  # keep: archive split -> train | val | test (one to one)
    merge: dict[str, str] = {}  # merge: archive split -> the archive split it is folded into
    # also keep copies together: keypoints (SIFT + RANSAC: rotated, flipped, zoomed, cropped, re-toned copies),
    # dhash (resized or re-encoded copies only, faster) or off
    near_duplicates: Literal["off", "keypoints", "dhash"] = "off"
    near_duplicate_distance: int = Field(4, ge=0, le=32)  # dhash: max Hamming distance between 64-bit dHashes
    near_duplicate_inliers: int = Field(20, ge=8)  # keypoints: matches agreeing on one affine map to call a copy
    shortcut_warning: float = Field(0.8, ge=0.5, le=1.0)  # warn when metadata alone predicts the label this well (AUC)
    audit_images: int = Field(1000, ge=20)  # images sampled per split for the shift score
    link: Literal["hardlink", "copy"] = (
        "hardlink"  # copy: processed files independent of interim ones (more disk, slower)
    )

    @field_validator("ratios")
    @classmethod
    def _ratios_sum_to_one(cls, ratios: dict[str, float]) -> dict[str, float]:
        unknown = set(ratios) - set(SPLIT_NAMES)
        if unknown:
            raise ValueError(f"unknown split name(s) {sorted(unknown)}; use {', '.join(SPLIT_NAMES)}")
        if "train" not in ratios or "test" not in ratios:
            raise ValueError("needs at least train and test")
        if any(value <= 0 for value in ratios.values()):
            raise ValueError("every ratio must be > 0")
        if not math.isclose(sum(ratios.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"ratios must sum to 1, got {sum(ratios.values()):g}")
        return ratios

    @field_validator("near_duplicates", mode="before")
    @classmethod
    def _unquoted_off(cls, method: object) -> object:
        # YAML 1.1 (PyYAML) reads an unquoted `off` as false, and DVC's `exp run -S` writes params.yaml unquoted
        if method is False:
            return "off"
        if method is True:
            raise ValueError("name the method: keypoints or dhash (or off)")
        return method

    @field_validator("rename", "merge")
    @classmethod
    def _targets_are_split_names(cls, mapping: dict[str, str]) -> dict[str, str]:
        return {source.lower(): target.lower() for source, target in mapping.items()}


class AugmentSettings(Strict):
    flip: bool = True  # random horizontal flips
    rotation: float = Field(0.05, ge=0, le=0.5)  # fraction of a full turn
    zoom: float = Field(0.1, ge=0, le=0.5)
    contrast: float = Field(0.3, ge=0, le=1)  # random contrast changes: robustness to acquisition differences


class TrainSettings(Strict):
    loader: Literal["keras", "opencv"] = "keras"
    model: Literal["small_cnn", "mobilenet_v2", "efficientnet_b0", "sklearn_linear"] = "small_cnn"
    weights: Literal["imagenet"] | None = None
    image_size: int = Field(64, ge=32, le=1024)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(16, ge=1, le=4096)
    learning_rate: float = Field(0.002, gt=0, le=1)
    fine_tune_layers: int = Field(0, ge=0)  # backbones: unfreeze this many top layers for a second phase
    fine_tune_epochs: int = Field(0, ge=0)
    fine_tune_learning_rate: float = Field(1e-5, gt=0, le=1)
    augment: AugmentSettings = AugmentSettings()
    class_weight: Literal["balanced"] | None = "balanced"
    early_stopping_patience: int = Field(3, ge=1)  # epochs without val_loss improvement (needs a val split)
    deterministic: bool = True  # bit-identical reruns; single-threaded TensorFlow ops
    distribute: Literal["none", "mirrored", "multi_worker"] = (
        "none"  # tf.distribute strategy; multi_worker reads TF_CONFIG
    )
    threads: int = Field(2, ge=1, le=64)  # OpenCV loader decoding threads
    mixed_precision: bool = False  # float16 compute, float32 weights and outputs, loss scaling (GPU tensor cores)
    jit_compile: bool = False  # XLA-compile the training step
    seed: int = Field(42, ge=0)

    @model_validator(mode="after")
    def _xla_has_kernels_for_every_layer(self) -> TrainSettings:
        if self.jit_compile and (self.augment.rotation > 0 or self.augment.zoom > 0):
            raise ValueError(
                "jit_compile: true needs augment.rotation: 0 and augment.zoom: 0 (Keras' RandomRotation and "
                "RandomZoom have no XLA kernels, and Keras would silently train without XLA)"
            )
        return self


class EvaluateSettings(Strict):
    target_sensitivity: float | None = Field(None, gt=0, le=1)  # two classes: threshold for this val sensitivity
    bootstrap_resamples: int = Field(1000, ge=100, le=100_000)  # resamples of patients for the confidence intervals
    confidence_level: float = Field(0.95, gt=0.5, lt=1)
    calibration_bins: int = Field(10, ge=2, le=100)  # equal-width bins of top-class probability (ECE, reliability)
    seed: int = Field(42, ge=0)


class Params(Strict):
    datasets: list[str]
    fetch: FetchSettings = FetchSettings()
    restructure: RestructureSettings = RestructureSettings()
    split: SplitSettings = SplitSettings()
    train: TrainSettings = TrainSettings()
    evaluate: EvaluateSettings = EvaluateSettings()

    @field_validator("datasets")
    @classmethod
    def _names_are_plain(cls, names: list[str]) -> list[str]:
        for name in names:
            if not DATASET_NAME.match(name):
                raise ValueError(f"dataset name {name!r} must be lower-case letters, digits and _")
        if len(set(names)) != len(names):
            raise ValueError("a dataset is listed twice")
        return names


# --------------------------------------------------------------------------- datasets/<ds>.yaml


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


class LabelTable(Strict):
    """Labels from a table inside the archive instead of from folder names (HAM10000, APTOS, ISIC 2019, ...)."""

    table: str  # member path of the CSV, TSV or XLSX (first sheet; the first row names the columns)
    id_column: str  # names each image: its file name, with or without the extension, in any folder of the layout
    label_column: str | None = None  # one label per row (numbers are fine: name them in `names`)
    one_hot: list[str] = []  # or one column per label holding 1/0 (or scores): the label is the column at the maximum
    group_column: str | None = None  # patient or lesion id: kept in one split like patient_id; empty cell: own group
    split_column: str | None = None  # the archive's own split per row (through split_map)
    split_lists: dict[str, str] = {}  # or archive split -> member listing its image names, one per line
    names: dict[str, str] = {}  # label value -> readable name (APTOS 0: no_dr), for folders, reports and plots

    @field_validator("names", mode="before")
    @classmethod
    def _values_as_text(cls, names: object) -> object:
        # YAML reads `0: no_dr` with an integer key; table cells are text
        return {str(raw): str(name) for raw, name in names.items()} if isinstance(names, dict) else names

    @model_validator(mode="after")
    def _one_way_to_label_and_split(self) -> LabelTable:
        if (self.label_column is None) == (not self.one_hot):
            raise ValueError("give either label_column or one_hot (a list of columns), not both or neither")
        if self.split_column and self.split_lists:
            raise ValueError("give split_column or split_lists, not both")
        return self


class DatasetSpec(Strict):
    name: str
    kaggle: str | None  # owner/slug/versions/N; null for an archive that is not on Kaggle
    archive: str  # the file name Kaggle's CLI gives the download (or the local archive's name)
    # null: params.yaml's fetch.source; synthetic | path (params.yaml fetch.paths.<ds>) | kaggle for this dataset alone
    fetch: Literal["synthetic", "path", "kaggle"] | None
    # member path patterns ending in {file}: {split}, {label} match one folder, * part of one, ** any folders
    layout: list[str] = Field(min_length=1)
    # Required even when empty: dvc.yaml tracks each of these keys, and DVC needs them present.
    extensions: list[str]  # file extensions taken as images (case-insensitive)
    ignore: list[str]  # members to leave out (nested copies, AppleDouble files, masks, ...)
    split_map: dict[str, str]  # archive split name -> our name; unmapped names are lower-cased
    patient_id: str | None  # regex on the file name; group 1 is the patient id
    labels: LabelTable | None  # null: labels are folder names ({label} in the layout)
    # member pattern ending in {file} of the originals the class images were made from (augmented archives), or
    # null: restructure keeps them apart, split groups every image with the original it matches
    sources: str | None
    synthetic: SyntheticSpec | None  # the offline stand-in; null for a dataset used only with real downloads
    split: dict[str, object]  # overrides of params.yaml's split section for this dataset ({} for none)

    @field_validator("kaggle")
    @classmethod
    def _pinned_handle(cls, handle: str | None) -> str | None:
        if handle is not None and not re.fullmatch(r"[\w.-]+/[\w.-]+/versions/\d+", handle):
            raise ValueError(f"{handle!r} must be owner/slug/versions/N (a pinned version)")
        return handle

    @field_validator("layout")
    @classmethod
    def _layout_ends_in_file(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not pattern.endswith("{file}"):
                raise ValueError(f"layout {pattern!r} must end with {{file}}")
        return patterns

    @model_validator(mode="after")
    def _labels_from_folders_or_a_table(self) -> DatasetSpec:
        for pattern in self.layout:
            if self.labels is None and "{label}" not in pattern:
                raise ValueError(f"layout {pattern!r} needs {{label}} (or labels from a table: key labels)")
            if self.labels is not None and "{label}" in pattern:
                raise ValueError(
                    f"layout {pattern!r} has {{label}}, but labels come from the table {self.labels.table}"
                )
        if self.fetch == "kaggle" and self.kaggle is None:
            raise ValueError("fetch: kaggle needs a kaggle handle (owner/slug/versions/N)")
        return self

    @field_validator("sources")
    @classmethod
    def _sources_name_only_the_file(cls, pattern: str | None) -> str | None:
        if pattern is not None and (not pattern.endswith("{file}") or "{label}" in pattern or "{split}" in pattern):
            raise ValueError(f"{pattern!r} must end with {{file}} and hold no {{label}} or {{split}}")
        return pattern

    @field_validator("patient_id")
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


# --------------------------------------------------------------------------- loading


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path} not found") from None
    except yaml.YAMLError as error:
        raise PipelineError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path} must hold a mapping of keys, found {type(data).__name__}")
    return data


def _describe(error: ValidationError, path: Path, prefix: str = "") -> str:
    problems = []
    for item in error.errors():
        key = prefix + ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{key}: {message}")
    return f"invalid {path}: " + "; ".join(problems)


def split_settings(params: Params, dataset: DatasetSpec) -> SplitSettings:
    """params.yaml's split section with the dataset's own overrides (datasets/<ds>.yaml, key split) on top."""
    try:
        return SplitSettings.model_validate({**params.split.model_dump(), **dataset.split})
    except ValidationError as error:
        source = f"{PARAMS_FILE} (split) with {dataset_file(dataset.name)} (split)"
        raise PipelineError(_describe(error, Path(source), prefix="split.")) from None


def load_params(root: Path = Path(".")) -> Params:
    path = root / PARAMS_FILE
    try:
        return Params.model_validate(_read_yaml(path))
    except ValidationError as error:
        raise PipelineError(_describe(error, Path(PARAMS_FILE))) from None


def dataset_file(name: str, root: Path = Path(".")) -> Path:
    return root / DATASETS_DIR / f"{name}.yaml"


def load_dataset(name: str, params: Params, root: Path = Path(".")) -> DatasetSpec:
    if name not in params.datasets:
        raise PipelineError(f"dataset {name!r} is not listed under 'datasets' in {PARAMS_FILE} ({params.datasets})")
    path = dataset_file(name, root)
    try:
        return DatasetSpec.model_validate({"name": name, **_read_yaml(path)})
    except ValidationError as error:
        raise PipelineError(_describe(error, Path(DATASETS_DIR) / path.name)) from None
