"""Reading params.yaml and datasets/<ds>.yaml: each stage validates the sections it reads, naming file and key.

The schema is split by concern (fetch.py, restructure.py, split.py, train.py, evaluate.py) so that a stage's
code deps hold only the settings it reads; a stage states what it reads as a `StageParams` (params.yaml) and a
`DatasetEntry` (datasets/<ds>.yaml) subclass. Unknown top-level keys are errors in every stage; a section's
own keys are checked by the stages that read it, and all of them at once by `project.py` (tests, `add`).
params.yaml is where a default lives: every default in the schema equals its params.yaml value
(tests/test_params.py), so that code that builds settings without a file (tests, benchmarks) sees what a run sees.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from medimage.errors import PipelineError

PARAMS_FILE = "params.yaml"
DATASETS_DIR = "datasets"
DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
DATASET_NAME_MAX = 64  # it names files, folders, DVC stages and a model artifact (<name>-classifier)
# every top-level key of each file (tests/test_params.py checks these against project.py's full models)
PARAMS_KEYS = ("datasets", "fetch", "restructure", "split", "train", "evaluate")
DATASET_KEYS = (  # in the order `add` writes them
    *("kaggle", "archive", "fetch", "layout", "extensions", "ignore", "split_map", "group_regex", "labels"),
    *("sources", "synthetic", "split"),
)
RENAMED_KEYS = {"patient_id": "group_regex"}  # old name -> new: an entry written before a rename is told which


class Strict(BaseModel):
    """Unknown keys are errors: a typo in params.yaml must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StageParams(BaseModel):
    """The params.yaml sections one stage reads (subclasses add them); the other sections are another stage's."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    datasets: list[str]

    @field_validator("datasets")
    @classmethod
    def _names_are_plain(cls, names: list[str]) -> list[str]:
        for name in names:
            problem = dataset_name_problem(name)
            if problem:
                raise ValueError(problem)
        if len(set(names)) != len(names):
            raise ValueError("a dataset is listed twice")
        return names


def dataset_name_problem(name: str) -> str | None:
    """Why `name` cannot name a dataset, or None. A name must read back as itself in YAML 1.1 (PyYAML, which the
    stages use) and 1.2 (ruamel, which DVC uses): `yes`, `null`, `1e3`, `017`, `0x1f` or `1_000` would reach
    a stage or DVC's foreach as a boolean, nothing or a number."""
    if not DATASET_NAME.match(name):
        return f"dataset name {name!r} must be lower-case letters, digits and _"
    if len(name) > DATASET_NAME_MAX:
        return f"dataset name {name[:20]!r}... is {len(name)} characters, over the limit of {DATASET_NAME_MAX}"
    from ruamel.yaml import YAML  # only here: DVC's own YAML reader

    for reader, value in (("YAML 1.1", yaml.safe_load(name)), ("YAML 1.2 (DVC)", YAML(typ="safe").load(name))):
        if value != name:
            return f"dataset name {name!r} reads as {value!r} in {reader}, not as a name; choose another name"
    return None


class DatasetEntry(BaseModel):
    """The keys of datasets/<ds>.yaml one stage reads (subclasses add them)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str


Settings = TypeVar("Settings", bound=BaseModel)


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path} not found") from None
    except yaml.YAMLError as error:
        raise PipelineError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(data, dict):
        raise PipelineError(f"{path} must hold a mapping of keys, found {type(data).__name__}")
    return data


def describe(error: ValidationError, path: Path, prefix: str = "") -> str:
    problems = []
    for item in error.errors():
        key = prefix + ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{key}: {message}")
    return f"invalid {path}: " + "; ".join(problems)


def validate(model: type[Settings], data: dict, path: Path, known_keys: tuple[str, ...]) -> Settings:
    """`data` as `model`, with one error naming `path` and every bad key (unknown top-level keys included)."""
    unknown = [key for key in data if key not in known_keys]
    if unknown:
        problems = [
            f"{key}: renamed {RENAMED_KEYS[key]}, same value"
            if key in RENAMED_KEYS
            else f"{key}: Extra inputs are not permitted"
            for key in unknown
        ]
        raise PipelineError(f"invalid {path}: " + "; ".join(problems))
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise PipelineError(describe(error, path)) from None


def dataset_file(name: str, root: Path = Path(".")) -> Path:
    return root / DATASETS_DIR / f"{name}.yaml"


def read_params(model: type[Settings], root: Path = Path(".")) -> Settings:
    """params.yaml as `model`: a StageParams subclass, or project.Params (every section)."""
    return validate(model, read_yaml(root / PARAMS_FILE), Path(PARAMS_FILE), PARAMS_KEYS)


def read_dataset(name: str, model: type[Settings], datasets: list[str], root: Path = Path(".")) -> Settings:
    """datasets/<name>.yaml as `model`, for a dataset listed in params.yaml (`datasets`)."""
    if name not in datasets:
        raise PipelineError(f"dataset {name!r} is not listed under 'datasets' in {PARAMS_FILE} ({datasets})")
    path = dataset_file(name, root)
    return validate(model, {"name": name, **read_yaml(path)}, Path(DATASETS_DIR) / path.name, ("name", *DATASET_KEYS))
