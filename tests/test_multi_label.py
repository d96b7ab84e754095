"""Multi-label sets: NIH ChestX-ray14's stand-in (every image's findings, the official split, stratified patients),
the masked loss and per-label models, and the pipeline end to end with the headline keys of every dataset.
CheXpert's and ODIR's layouts with real images are in test_add_layouts.py."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from harness.browser import CHROMIUM, open_offline
from harness.project import environment, git, make_project, run_in, stage, update_yaml
from medimage import manifest
from medimage.archives.synthetic import write_archive
from medimage.archives.unpacking import restructure
from medimage.reporting import sheets
from medimage.reporting.comparison import comparison_page, paired_difference, run_at
from medimage.settings.evaluate import EvaluateSettings
from medimage.settings.fetch import SyntheticSettings
from medimage.settings.project import DatasetSpec
from medimage.settings.restructure import RestructureSettings
from medimage.settings.split import SplitSettings
from medimage.splitting.assignment import iterative_stratification, labels_missing
from medimage.splitting.resplit import split_dataset
from tests.samples import interim_row
from tests.test_train_evaluate import EVAL_KEYS

NIH = "nih_chest_xray"
KNOBS = SyntheticSettings(images_per_class=15, image_size=32)  # about 290 images, 72 patients
PARAMS_SPLIT = yaml.safe_load(Path("params.yaml").read_text())["split"]


@pytest.fixture(scope="module")
def nih(tmp_path_factory: pytest.TempPathFactory, registered: dict[str, DatasetSpec]) -> tuple[Path, Path]:
    """The stand-in archive and its restructured folder."""
    folder = tmp_path_factory.mktemp("nih")
    archive = folder / "data.zip"
    write_archive(registered[NIH], KNOBS, archive)
    restructure(archive, registered[NIH], RestructureSettings(), folder / "interim")
    return archive, folder / "interim"


def table_rows(archive: Path, member: str) -> list[dict[str, str]]:
    with zipfile.ZipFile(archive) as opened:
        return list(csv.DictReader(io.StringIO(opened.read(member).decode())))


def test_every_image_once_with_exactly_its_findings_and_no_finding_never_a_label(nih: tuple[Path, Path]) -> None:
    archive, interim = nih
    table = {row["Image Index"]: row for row in table_rows(archive, "Data_Entry_2017.csv")}
    rows = manifest.read_interim(interim)
    assert sorted(Path(row.member).name for row in rows) == sorted(table)  # each image once, none lost
    names = manifest.class_names(rows)
    assert "No Finding" not in names and len(names) >= 10
    for row in rows:
        cell = table[Path(row.member).name]["Finding Labels"]
        findings = set() if cell == "No Finding" else set(cell.split("|"))
        assert {name for name, value in row.targets if value == 1} == findings
        assert {value for _, value in row.targets} <= {0, 1}  # NIH has no unknown value
        assert row.label == "|".join(sorted(findings)) and row.group == table[Path(row.member).name]["Patient ID"]
        assert row.path.count("/") == 1  # <split>/<file>: no label folder
    with (interim / "manifest.csv").open() as handle:
        header = next(csv.reader(handle))
    assert header[-len(names) :] == [f"label:{name}" for name in names]


def test_the_official_test_list_stays_test_and_no_patient_straddles_two_splits(
    nih: tuple[Path, Path], tmp_path: Path
) -> None:
    archive, interim = nih
    settings = SplitSettings.model_validate({**PARAMS_SPLIT, "strategy": "keep"})
    metrics = split_dataset(NIH, settings, interim, tmp_path / "processed", tmp_path / "sheet.png")
    rows = manifest.read_processed(tmp_path / "processed")
    with zipfile.ZipFile(archive) as opened:
        official_test = set(opened.read("test_list.txt").decode().split())
    assert {Path(row.path).name for row in rows if row.split == "test"} == official_test
    splits_of: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        splits_of[row.group].add(row.split)
    assert all(len(splits) == 1 for splits in splits_of.values()) and metrics["group_overlap"]["new"] == 0
    assert {row.split for row in rows} == {"train", "val", "test"}
    assert set(metrics["prevalence"]["new"]) == {"train", "val", "test"}
    assert set(metrics["prevalence"]["new"]["test"]) == set(manifest.class_names(rows))
    assert metrics["images"]["new"] == dict(sorted(Counter(row.split for row in rows).items()))
    sheet = cv2.imread(str(tmp_path / "sheet.png"))  # a row per label with positives, one for images with none
    assert sheet.shape[0] == sheets.TITLE + (len(manifest.class_names(rows)) + 1) * (sheets.THUMB + 4)


def prevalence(rows: list[manifest.ProcessedRow], split: str, label: str) -> float:
    values = [dict(row.targets)[label] for row in rows if row.split == split]
    return sum(value == 1 for value in values) / len(values)


def test_a_pooled_split_evens_every_labels_prevalence_across_splits(nih: tuple[Path, Path], tmp_path: Path) -> None:
    """Iterative stratification of patients: every label with 20 positives or more is within 0.06 of its overall
    prevalence in train, val and test (a 0.1 val of about 30 images moves in steps of 0.03), and closer on
    average than a grouped split that ignores the labels."""
    _, interim = nih
    deviations = {}
    for stratify in (True, False):
        settings = SplitSettings.model_validate({**PARAMS_SPLIT, "strategy": "pool", "stratify": stratify})
        split_dataset(NIH, settings, interim, tmp_path / f"p{stratify}", tmp_path / f"s{stratify}.png")
        rows = manifest.read_processed(tmp_path / f"p{stratify}")
        common = [name for name in manifest.class_names(rows) if sum(dict(r.targets)[name] for r in rows) >= 20]
        overall = {name: sum(dict(row.targets)[name] for row in rows) / len(rows) for name in common}
        deviations[stratify] = [
            abs(prevalence(rows, split, name) - overall[name]) for split in ("train", "val", "test") for name in common
        ]
        splits_of: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            splits_of[row.group].add(row.split)
        assert all(len(splits) == 1 for splits in splits_of.values())  # no patient in two splits
    assert max(deviations[True]) <= 0.06
    assert np.mean(deviations[True]) < np.mean(deviations[False])


def test_a_rare_label_reaches_every_split_its_groups_allow_and_is_reported_where_not() -> None:
    sizes = np.ones(40, np.int64)
    vectors = np.zeros((40, 2), np.int64)
    vectors[:3, 0] = 1  # three patients with the rare label: one per split
    vectors[3:20, 1] = 1
    chosen = iterative_stratification(vectors, sizes, [0.7, 0.1, 0.2], seed=3)
    assert sorted(chosen[:3].tolist()) == [0, 1, 2]
    assert np.bincount(chosen, minlength=3).tolist() == [28, 4, 8]  # the ratios, whole groups
    items = [interim_row(f"{n}.png", "", "all", f"{n}", f"{n}", (("Hernia", int(n < 2)),)) for n in range(10)]
    splits = ["train"] * 5 + ["val"] * 2 + ["test"] * 3
    splits[1] = "test"
    assert labels_missing(items, splits) == {"val": ["Hernia"]}


def test_the_masked_loss_leaves_unknown_values_out() -> None:
    import tensorflow as tf

    from medimage.modelling.fitting import masked_binary_crossentropy

    truth = np.array([[1.0, np.nan, 0.0], [np.nan, np.nan, 1.0]], np.float32)
    probabilities = np.array([[0.8, 0.01, 0.3], [0.99, 0.5, 0.6]], np.float32)
    loss = masked_binary_crossentropy({"positive": [2.0, 1.0, 1.0], "negative": [1.0, 1.0, 0.5]})
    found = loss(tf.constant(truth), tf.constant(probabilities)).numpy()
    first = (-2.0 * np.log(0.8) - 0.5 * np.log(0.7)) / 2  # the unknown second label adds nothing
    assert found == pytest.approx([first, -np.log(0.6)], rel=1e-5)
    other = probabilities.copy()
    other[np.isnan(truth)] = 0.123  # whatever the model says where the truth is unknown
    assert loss(tf.constant(truth), tf.constant(other)).numpy() == pytest.approx(found, rel=1e-6)


def test_the_scikit_learn_baseline_fits_each_label_on_its_known_images() -> None:
    from medimage.modelling.linear import PerLabel
    from medimage.settings.train import TrainSettings

    rng = np.random.default_rng(0)
    rows = rng.normal(size=(60, 4))
    labels = np.stack([(rows[:, 0] > 0), (rows[:, 1] > 0), np.ones(60)], axis=1).astype(np.float32)
    labels[::3, 0] = np.nan  # unknown: not a negative
    model = PerLabel(TrainSettings()).fit(rows, labels)
    probabilities = model.predict_proba(rows)
    assert probabilities.shape == (60, 3) and np.all(probabilities[:, 2] == 1.0)
    assert np.mean((probabilities[:, 0] >= 0.5) == (rows[:, 0] > 0)) > 0.9


TINY = {
    "datasets": [NIH],
    "fetch": {"synthetic": {"images_per_class": 15, "image_size": 48}},
    "train": {"image_size": 32, "epochs": 3, "batch_size": 16},
    "evaluate": {"bootstrap_resamples": 200},
}
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Chromium not installed (make test installs Debian's chromium; under CI its absence fails this test)",
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in through `dvc repro report@nih_chest_xray` with the small CNN and Keras's reader, committed."""
    project = make_project(tmp_path_factory.mktemp("project"), TINY)
    run_in(project, "dvc", "repro", f"report@{NIH}")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "small CNN")
    return project


def reported(project: Path) -> dict:
    return json.loads((project / "metrics" / NIH / "eval_report.json").read_text())


def test_a_multi_label_run_has_the_headline_keys_of_all_per_label_scores_and_decisions(project: Path) -> None:
    headline = json.loads((project / "metrics" / NIH / "eval.json").read_text())
    assert set(headline) == EVAL_KEYS == set(json.loads(Path("metrics/chest_xray/eval.json").read_text()))
    assert 0.5 < headline["roc_auc"] <= 1 and headline["roc_auc_ci_low"] <= headline["roc_auc"]
    report = reported(project)
    names = report["classes"]
    assert report["multi_label"] and set(report["per_label"]) == set(names) and "No Finding" not in names
    effusion = report["per_label"]["Effusion"]
    assert effusion["positive"] > 0 and 0 <= effusion["threshold"] <= 1 and len(effusion["roc_auc_ci"]) == 2
    with (project / "metrics" / NIH / "test_predictions.csv").open() as handle:
        predicted = list(csv.DictReader(handle))
    assert predicted and {f"y_{name}" for name in names} | {f"p_{name}" for name in names} <= set(predicted[0])
    roc = (project / "plots" / NIH / "roc.csv").read_text()
    assert "Effusion" in roc
    test_images = [project / "data" / "processed" / NIH / row["path"] for row in predicted[:2]]
    printed = run_in(project, sys.executable, "-m", "stages.predict", NIH, *map(str, test_images)).stdout
    line = json.loads(printed.splitlines()[0])
    assert set(line["probabilities"]) == set(names) and set(line["decisions"]) == set(names)
    assert line["label"] == "|".join(name for name in names if line["decisions"][name])
    thresholds = report["operating_point"]["thresholds"]
    assert line["decisions"] == {name: line["probabilities"][name] >= thresholds[name] for name in names}


@needs_chromium
def test_the_multi_label_page_opens_offline_with_each_labels_scores_and_prevalence(project: Path) -> None:
    opened = open_offline(project / "reports" / f"{NIH}.html")
    assert opened.console_errors == [] and opened.requests == []
    charts = [(width, height) for tag, width, height in opened.figure_sizes if tag == "svg"]
    # loss and accuracy by epoch; ROC and precision-recall per label, co-occurrence, reliability
    assert len(charts) == 6 and all(width > 200 and height > 200 for width, height in charts), charts
    report = reported(project)
    for name, scores in report["per_label"].items():
        shown = opened.numbers[f"eval_report.per_label.{name}.roc_auc"]
        assert shown == ("n/a" if scores["roc_auc"] is None else str(scores["roc_auc"])), name
        assert opened.numbers[f"eval_report.per_label.{name}.threshold"] == str(scores["threshold"])
    split = json.loads((project / "metrics" / NIH / "split_report.json").read_text())
    for name, positives in split["counts"]["new"]["test"].items():
        assert opened.numbers[f"split.prevalence.new.test.{name}"].startswith(f"{positives:,} ("), name
    assert "ROC AUC (macro over labels)" in opened.text and "labels present together" in opened.text
    assert "By Patient Gender" in opened.text and "By View Position" in opened.text


def test_every_family_trains_on_the_multi_label_set_and_two_runs_compare_label_by_label(project: Path) -> None:
    for model, loader in (("sklearn_linear", "opencv"), ("small_cnn", "opencv"), ("mobilenet_v2", "keras")):
        update_yaml(project / "params.yaml", {"train": {"model": model, "loader": loader}})
        for module in ("train", "evaluate"):
            done = stage(project, module, NIH)
            assert done.returncode == 0, done.stderr[-2000:]
        models = project / "models" / NIH
        trained = {path.name: path.read_bytes() for path in models.iterdir() if path.is_file()}
        rerun = subprocess.run(  # another process, another hash seed: the same bytes
            [sys.executable, "-m", "stages.train", NIH],
            cwd=project,
            env=environment(project, PYTHONHASHSEED="7"),
            capture_output=True,
        )
        assert rerun.returncode == 0
        assert {path.name: path.read_bytes() for path in models.iterdir() if path.is_file()} == trained, model
        again = json.loads((project / "metrics" / NIH / "eval.json").read_text())
        assert set(again) == EVAL_KEYS and again["roc_auc"] is not None, (model, again)
        if model != "mobilenet_v2":  # from scratch on 290 images of 32 px it learns nothing in 3 epochs: only runs
            assert again["roc_auc"] > 0.5, (model, again)
        with (project / "metrics" / NIH / "test_predictions.csv").open() as handle:
            first_row = next(csv.DictReader(handle))
        sums = sum(float(value) for key, value in first_row.items() if key.startswith("p_"))
        assert sums != pytest.approx(1.0, abs=1e-3), (model, sums)  # a sigmoid per label, not one softmax
        git(project, "add", "-A")
        git(project, "commit", "-q", "-m", model)
    first, second = (run_at(revision, NIH, project) for revision in ("HEAD~3", "HEAD~2"))  # CNN, then sklearn
    paired = paired_difference(first, second, EvaluateSettings())
    names = reported(project)["classes"]
    assert paired.mcnemar_p is None and set(paired.per_label) == set(names)
    auc = {
        run: json.loads(run_in(project, "git", "show", f"{run}:metrics/{NIH}/eval.json").stdout)["roc_auc"]
        for run in ("HEAD~3", "HEAD~2")
    }
    assert paired.auc_difference == pytest.approx(auc["HEAD~2"] - auc["HEAD~3"], abs=2e-4)
    assert paired.auc_interval[0] <= paired.auc_difference <= paired.auc_interval[1]
    text = comparison_page(first, second, EvaluateSettings())
    assert "ROC AUC of Effusion, B minus A" in text and "McNemar" not in text.split("Paired difference")[1]
