"""One run's outputs as the report reads them: from the working tree, or from a git revision (git alone).

Everything the page shows comes from files other stages wrote: metrics/<ds>/ and the plot rows (in git), the
model's train.json and the PNG galleries (in the DVC cache: present in the working tree, absent from a revision).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from medimage.errors import PipelineError
from medimage.paths import (
    CALIBRATION,
    CONFUSION,
    GRADCAM,
    LABELS,
    MANIFEST,
    METRICS_DIR,
    MISCLASSIFIED,
    MODELS_DIR,
    PLOTS_DIR,
    PRECISION_RECALL,
    PROCESSED_DIR,
    ROC,
    SPLIT_SAMPLES,
    TEST_PREDICTIONS,
    TRAIN_SUMMARY,
    declared_metrics,
    metrics_report,
)
from medimage.settings.evaluate import EvaluateParams
from medimage.settings.files import DATASET_KEYS, PARAMS_FILE, PARAMS_KEYS, dataset_file, validate
from medimage.settings.split import SplitEntry, split_settings

Reader = Callable[[str], bytes | None]  # a project-relative path -> its bytes; None where there is no such file
CURVES = PLOTS_DIR / "{dataset}" / "training" / "plots" / "metrics"  # DVCLive: <split>/<metric>.tsv
GALLERIES = {  # plots/<ds>/<file>: what the page calls it
    SPLIT_SAMPLES: "samples of each label and split",
    MISCLASSIFIED: "the most confident mistakes (test)",
    GRADCAM: "Grad-CAM: where the model looked (test)",
}


def folder_reader(root: Path) -> Reader:
    def read(path: str) -> bytes | None:
        target = root / path
        return target.read_bytes() if target.is_file() else None

    return read


def git_reader(revision: str, root: Path) -> Reader:
    """Files as committed at `revision` (a commit, branch, tag or DVC experiment ref)."""

    def read(path: str) -> bytes | None:
        shown = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=root, capture_output=True, check=False)
        return shown.stdout if shown.returncode == 0 else None

    return read


@dataclass(frozen=True)
class Run:
    """One dataset's run: each stage's metrics and report, the plot rows, the model summary, the galleries."""

    dataset: str
    origin: str  # where it was read from: "the working tree", "HEAD~1 (3f15bf7, 2026-12-01)"
    fetch: dict  # metrics/<ds>/fetch_report.json; {} for runs committed before fetch wrote it
    restructure: dict  # restructure.json and restructure_report.json, merged
    split: dict
    evaluation: dict  # eval.json and eval_report.json, merged
    curves: dict[str, list[dict]]  # metric -> rows {"epoch", "split", metric}
    roc: list[dict]
    precision_recall: list[dict]
    calibration: list[dict]
    confusion: list[dict]  # one row per test image: actual, predicted
    predictions: list[dict]  # metrics/<ds>/test_predictions.csv
    settings: dict  # the settings the page shows: split (with the dataset's overrides), train, evaluate
    model: dict | None = None  # models/<ds>/train.json (DVC cache)
    class_names: list[str] = field(default_factory=list)
    galleries: dict[str, bytes] = field(default_factory=dict)  # file name -> PNG bytes (DVC cache)
    # split -> patients (or groups) in it, images without an id counting as their own; {} without the manifest
    patients: dict[str, int] = field(default_factory=dict)


def _json(read: Reader, path: Path, required: bool = True) -> dict | None:
    data = read(path.as_posix())
    if data is None:
        if required:
            raise PipelineError(f"{path} not found: run the pipeline first (dvc repro)")
        return None
    try:
        return json.loads(data)
    except ValueError as error:  # bad JSON or bad UTF-8: a file edited by hand or damaged in that revision
        raise PipelineError(f"{path} is not readable JSON in that run ({type(error).__name__}: {error})") from None


def _rows(read: Reader, path: Path, delimiter: str = ",") -> list[dict]:
    data = read(path.as_posix())
    try:
        return [] if data is None else list(csv.DictReader(io.StringIO(data.decode("utf-8")), delimiter=delimiter))
    except (UnicodeDecodeError, csv.Error) as error:
        raise PipelineError(f"{path} is not a readable CSV file in that run ({error})") from None


def _numbers(rows: list[dict], *keys: str) -> list[dict]:
    return [{**row, **{key: float(row[key]) for key in keys}} for row in rows]


def training_curves(read: Reader, dataset: str) -> dict[str, list[dict]]:
    """DVCLive's per-epoch TSVs (train/<metric>.tsv for the train split, eval/<metric>.tsv for val) by metric."""
    folder = Path(str(CURVES).format(dataset=dataset))
    curves: dict[str, list[dict]] = {}
    for metric in ("loss", "accuracy"):
        for logged, split in (("train", "train"), ("eval", "val")):
            for row in _rows(read, folder / logged / f"{metric}.tsv", delimiter="\t"):
                curves.setdefault(metric, []).append(
                    {"epoch": int(row["step"]) + 1, "split": split, metric: float(row[metric])}
                )
    return curves


def shown_settings(params: EvaluateParams, dataset: SplitEntry) -> dict[str, dict]:
    """The settings the page shows: split (with the dataset's overrides), train, evaluate."""
    return {
        "split": split_settings(params.split, dataset).model_dump(mode="json"),
        "train": params.train.model_dump(mode="json"),
        "evaluate": params.evaluate.model_dump(mode="json"),
    }


def settings_from(read: Reader, dataset: str) -> dict[str, dict]:
    """shown_settings from params.yaml and datasets/<ds>.yaml as `read` gives them (a git revision's, say)."""
    files = {path: read(path.as_posix()) for path in (Path(PARAMS_FILE), dataset_file(dataset))}
    for path, data in files.items():
        if data is None:
            raise PipelineError(f"{path} not found at that revision")
    try:
        params_data, dataset_data = (yaml.safe_load(data) for data in files.values())
    except yaml.YAMLError as error:
        raise PipelineError(f"{' or '.join(map(str, files))} is not valid YAML at that revision: {error}") from None
    if not isinstance(params_data, dict) or not isinstance(dataset_data, dict):
        raise PipelineError(f"{' or '.join(map(str, files))} holds no mapping of keys at that revision")
    params = validate(EvaluateParams, params_data, Path(PARAMS_FILE), PARAMS_KEYS)
    entry = validate(SplitEntry, {"name": dataset, **dataset_data}, dataset_file(dataset), ("name", *DATASET_KEYS))
    return shown_settings(params, entry)


def patients_per_split(rows: list[dict]) -> dict[str, int]:
    """From the processed manifest's rows: how many patients (or groups) each split holds."""
    units: dict[str, set[str]] = {}
    for row in rows:
        units.setdefault(row["split"], set()).add(row["group"] or f"image {row['path']}")
    return {split: len(found) for split, found in sorted(units.items())}


def load_run(read: Reader, dataset: str, origin: str, settings: dict) -> Run:
    metrics = METRICS_DIR / dataset
    plots = PLOTS_DIR / dataset

    def both(stage: str) -> dict:
        return {**_json(read, metrics / declared_metrics(stage)), **_json(read, metrics / metrics_report(stage))}

    evaluation = both("eval")
    return Run(
        dataset=dataset,
        origin=origin,
        fetch=_json(read, metrics / metrics_report("fetch"), required=False) or {},  # {}: a run from before it
        restructure=both("restructure"),
        split=both("split"),
        evaluation=evaluation,
        curves=training_curves(read, dataset),
        roc=_numbers(_rows(read, plots / ROC), "fpr", "tpr"),
        precision_recall=_numbers(_rows(read, plots / PRECISION_RECALL), "recall", "precision"),
        calibration=_numbers(_rows(read, plots / CALIBRATION), "confidence", "accuracy", "images"),
        confusion=_rows(read, plots / CONFUSION),
        predictions=_rows(read, metrics / TEST_PREDICTIONS),
        settings=settings,
        model=_json(read, MODELS_DIR / dataset / TRAIN_SUMMARY, required=False),
        class_names=_json(read, MODELS_DIR / dataset / LABELS, required=False) or evaluation["classes"],
        galleries={name: data for name in GALLERIES if (data := read((plots / name).as_posix())) is not None},
        patients=patients_per_split(_rows(read, PROCESSED_DIR / dataset / MANIFEST)),
    )
