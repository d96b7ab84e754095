"""What split reads: params.yaml `split` with each dataset's overrides; train and evaluate read `link` (the view)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from medimage.errors import PipelineError
from medimage.settings.files import PARAMS_FILE, DatasetEntry, StageParams, Strict, dataset_file, describe

SPLIT_NAMES = ("train", "val", "test")


class SplitSettings(Strict):
    strategy: Literal["keep", "merge", "pool"] = "pool"
    ratios: dict[str, float] = {"train": 0.7, "val": 0.1, "test": 0.2}  # pool: the new splits and their shares
    seed: int = Field(42, ge=0, lt=2**32)  # NumPy, TensorFlow and scikit-learn take 32 bits
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
    def _split_names_lower_case(cls, mapping: dict[str, str]) -> dict[str, str]:
        return {source.lower(): target.lower() for source, target in mapping.items()}


class SplitEntry(DatasetEntry):
    split: dict[str, object]  # overrides of params.yaml's split section for this dataset ({} for none)


class SplitParams(StageParams):
    split: SplitSettings = SplitSettings()


# The keys that act under one strategy only: a dataset's override of one of them does nothing under another.
STRATEGY_OF_KEY = {"rename": "keep", "merge": "merge"}


def ignored_overrides(settings: SplitSettings, dataset: SplitEntry) -> list[str]:
    """One line for each of the dataset's own split keys that does nothing under the strategy in force."""
    return [
        f"{dataset_file(dataset.name)} split.{key} applies under split.strategy {strategy}, not {settings.strategy}:"
        " it does nothing here"
        for key, strategy in STRATEGY_OF_KEY.items()
        if dataset.split.get(key) and settings.strategy != strategy
    ]


def split_settings(project: SplitSettings, dataset: SplitEntry) -> SplitSettings:
    """params.yaml's split section with the dataset's own overrides (datasets/<ds>.yaml, key split) on top."""
    try:
        return SplitSettings.model_validate({**project.model_dump(), **dataset.split})
    except ValidationError as error:
        source = f"{PARAMS_FILE} (split) with {dataset_file(dataset.name)} (split)"
        raise PipelineError(describe(error, Path(source), prefix="split.")) from None
