"""All of params.yaml and of a datasets/<ds>.yaml at once: for the `add` command, tests and benchmarks.

No stage imports this module: each validates only the sections it reads (see files.py), so that editing one
concern's schema reruns only the stages of that concern.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict

from medimage.settings.evaluate import EvaluateParams
from medimage.settings.fetch import FetchEntry, FetchParams
from medimage.settings.files import read_dataset, read_params
from medimage.settings.restructure import RestructureEntry, RestructureParams
from medimage.settings.split import SplitEntry


class Params(FetchParams, RestructureParams, EvaluateParams):
    """Every section of params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(FetchEntry, RestructureEntry, SplitEntry):
    """Every key of a datasets/<ds>.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def load_params(root: Path = Path(".")) -> Params:
    return read_params(Params, root)


def load_dataset(name: str, params: Params, root: Path = Path(".")) -> DatasetSpec:
    return read_dataset(name, DatasetSpec, params.datasets, root)
