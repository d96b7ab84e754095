"""params.yaml is the one source of every default: the schema's defaults equal it, key for key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from harness.project import ROOT
from medimage.errors import PipelineError
from medimage.settings.fetch import FetchParams
from medimage.settings.files import DATASET_KEYS, PARAMS_FILE, PARAMS_KEYS, read_params
from medimage.settings.project import DatasetSpec, Params
from medimage.settings.split import SplitSettings
from medimage.settings.train import TrainParams, TrainSettings

# Mappings whose keys are data (split names, dataset names), not schema fields: compared whole.
WHOLE_VALUES = {"split.ratios", "fetch.paths"}


def differences(schema: dict, given: dict, prefix: str = "") -> list[str]:
    found = []
    for key in sorted(set(schema) | set(given)):
        path = f"{prefix}{key}"
        if key not in given:
            found.append(f"{path}: in the schema (default {schema[key]!r}) but not in params.yaml")
        elif key not in schema:
            found.append(f"{path}: in params.yaml but not in the schema")
        elif isinstance(schema[key], dict) and isinstance(given[key], dict) and path not in WHOLE_VALUES:
            found.extend(differences(schema[key], given[key], f"{path}."))
        elif schema[key] != given[key]:
            found.append(f"{path}: schema default {schema[key]!r}, params.yaml {given[key]!r}")
    return found


def test_every_schema_default_is_the_params_yaml_value() -> None:
    given = yaml.safe_load((ROOT / "params.yaml").read_text())
    schema = Params(datasets=given["datasets"]).model_dump()
    assert differences(schema, given) == []


def test_a_drifted_default_is_named() -> None:
    assert differences({"train": {"epochs": 10}}, {"train": {"epochs": 20}}) == [
        "train.epochs: schema default 10, params.yaml 20"
    ]


def test_an_unquoted_off_is_the_method_off_as_dvc_exp_run_writes_it() -> None:
    # DVC rewrites params.yaml on `exp run -S` without quotes; PyYAML then reads `off` as false
    assert SplitSettings.model_validate(yaml.safe_load("near_duplicates: off")).near_duplicates == "off"
    with pytest.raises(ValidationError, match="name the method: keypoints or dhash"):
        SplitSettings.model_validate({"near_duplicates": True})


def test_every_model_params_accepts_has_a_family_and_no_other() -> None:
    from typing import get_args

    from medimage.modelling.families import FAMILIES
    from medimage.settings.train import TrainSettings

    assert set(get_args(TrainSettings.model_fields["model"].annotation)) == set(FAMILIES)


def test_the_known_top_level_keys_are_the_full_schemas() -> None:
    assert set(PARAMS_KEYS) == set(Params.model_fields)
    assert {"name", *DATASET_KEYS} == set(DatasetSpec.model_fields)


def test_a_stage_validates_its_own_sections_and_every_top_level_key(tmp_path: Path) -> None:
    """fetch does not stop on a bad train value (train does, naming it); a top-level typo stops every stage."""
    params = yaml.safe_load((ROOT / PARAMS_FILE).read_text())
    params["train"]["epochs"] = 0
    (tmp_path / PARAMS_FILE).write_text(yaml.safe_dump(params))
    assert read_params(FetchParams, tmp_path).fetch.source == params["fetch"]["source"]
    with pytest.raises(PipelineError, match=r"invalid params\.yaml: train\.epochs: Input should be greater"):
        read_params(TrainParams, tmp_path)
    params["train"]["epochs"] = 1
    params["trian"] = {}
    (tmp_path / PARAMS_FILE).write_text(yaml.safe_dump(params))
    for model in (FetchParams, TrainParams, Params):
        with pytest.raises(PipelineError, match=r"invalid params\.yaml: trian: Extra inputs are not permitted"):
            read_params(model, tmp_path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fine_tune_epochs": 2}, "multi_worker trains one phase"),
        ({"loader": "opencv"}, "multi_worker needs loader: keras"),
    ],
)
def test_multi_worker_limits_are_params_errors_before_training_starts(changes: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrainSettings(distribute="multi_worker", **changes)
    TrainSettings(distribute="mirrored", **changes)  # our own loop only: Keras' fit does both
