"""Fixtures shared by the tests; plain helpers live in harness/project.py (the harness) and tests/samples.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import settings

from harness.project import REGISTERED_DATASETS, ROOT, make_project
from medimage.settings.files import dataset_file
from medimage.settings.project import DatasetSpec, Params, load_dataset, load_params

# CI runs the property tests on the same examples every time (a red CI must mean a change broke something); a run
# here explores new ones, and what it finds is replayed from .hypothesis/ until fixed
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI", "").lower() == "true":
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(ROOT)


@pytest.fixture(scope="session")
def registry(params: Params) -> dict[str, DatasetSpec]:
    return {name: load_dataset(name, params, ROOT) for name in params.datasets}


@pytest.fixture(scope="session")
def registered() -> dict[str, DatasetSpec]:
    """Every registry entry in datasets/, whether params.yaml runs it or not."""
    return {
        name: DatasetSpec.model_validate({"name": name, **yaml.safe_load(dataset_file(name, ROOT).read_text())})
        for name in REGISTERED_DATASETS
    }


@pytest.fixture
def small_project(tmp_path: Path) -> Path:
    """A project copy whose synthetic archives are tiny (12 per label: covid19's rarest label then has 3 images,
    one for each of train, val and test)."""
    return make_project(tmp_path / "project", {"fetch": {"synthetic": {"images_per_class": 12, "image_size": 32}}})
