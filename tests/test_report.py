"""report@<ds>: one self-contained page per run, opened in a real Chromium with the network blocked.

Two runs under real DVC: a binary dataset with the small CNN (Grad-CAM gallery) and a multi-class one with the
scikit-learn model (no Grad-CAM). The numbers a reader sees must be eval.json's; nothing may leave the page.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

from harness.browser import CHROMIUM, open_offline
from harness.project import ROOT, git, make_project, run_in
from medimage.errors import PipelineError
from medimage.reporting.comparison import comparison_page, run_at
from medimage.reporting.dvc_template import TEMPLATE, template
from medimage.reporting.page import page
from medimage.reporting.runs import folder_reader, load_run, settings_from
from medimage.settings.evaluate import EvaluateSettings

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Chromium not installed (make test installs Debian's chromium; under CI its absence fails this test)",
)
SMALL = {"fetch": {"synthetic": {"images_per_class": 12, "image_size": 32}}}
RUNS = {  # dataset -> its train settings
    "chest_xray": {"model": "small_cnn", "image_size": 32, "epochs": 2},
    "blood_cells": {"model": "sklearn_linear", "loader": "opencv", "image_size": 32},
}


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One project per run, each with its report built by `dvc repro` and committed."""
    built = {}
    for dataset, train in RUNS.items():
        project = make_project(tmp_path_factory.mktemp(dataset), {**SMALL, "datasets": [dataset], "train": train})
        run_in(project, "dvc", "repro", f"report@{dataset}")
        git(project, "add", "-A")
        git(project, "commit", "-q", "-m", "first run")
        built[dataset] = project
    return built


@needs_chromium
@pytest.mark.parametrize("dataset", sorted(RUNS))
def test_the_page_opens_offline_with_every_figure_drawn_and_eval_jsons_numbers(
    projects: dict[str, Path], dataset: str
) -> None:
    project = projects[dataset]
    opened = open_offline(project / "reports" / f"{dataset}.html")
    assert opened.console_errors == []
    assert opened.requests == []  # nothing to fetch: every figure, style and picture is inline
    charts = [(width, height) for tag, width, height in opened.figure_sizes if tag == "svg"]
    pictures = [(width, height) for tag, width, height in opened.figure_sizes if tag == "img"]
    curves = 0 if RUNS[dataset]["model"] == "sklearn_linear" else 2  # loss and accuracy by epoch
    assert len(charts) == curves + 4  # ROC, precision-recall, confusion, reliability
    assert all(width > 200 and height > 200 for width, height in charts), charts
    assert len(pictures) == 3 and all(width > 0 and height > 0 for width, height in pictures), pictures
    # the split's samples and the confident mistakes; Grad-CAM overlays, or one line saying the model has none
    assert sum(height > 100 for _, height in pictures) == 2 + (curves > 0)
    headline = json.loads((project / "metrics" / dataset / "eval.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "roc_auc", "sensitivity", "specificity", "macro_f1", "ece", "brier"):
        shown = opened.numbers[f"eval.{key}"]
        assert shown == ("n/a" if headline[key] is None else str(headline[key])), key
    intervals = json.loads((project / "metrics" / dataset / "eval_report.json").read_text())["confidence_intervals"]
    for key in ("accuracy", "balanced_accuracy", "roc_auc", "sensitivity", "specificity"):
        low, high = intervals[key]["low"], intervals[key]["high"]
        assert opened.numbers[f"eval_report.intervals.{key}"] == f"{low} to {high}", key
    fetched = json.loads((project / "metrics" / dataset / "fetch_report.json").read_text())
    assert opened.numbers["fetch.sha256"] == fetched["sha256"]
    for section in ("Provenance", "Flow of images", "Partition and leakage", "Subgroups", "Reporting checklist"):
        assert section in opened.text


def test_names_from_the_archive_are_escaped(projects: dict[str, Path]) -> None:
    project = projects["blood_cells"]
    run = load_run(folder_reader(project), "blood_cells", "here", settings_from(folder_reader(project), "blood_cells"))
    hostile = "<script>alert(1)</script>"
    text = page(dataclasses.replace(run, dataset=hostile, class_names=[hostile, *run.class_names[1:]]))
    assert "<script" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_the_page_is_rebuilt_alone_when_its_code_changes_and_is_byte_identical(projects: dict[str, Path]) -> None:
    project = projects["blood_cells"]
    page_file = project / "reports" / "blood_cells.html"
    before = page_file.read_bytes()
    module = project / "medimage" / "reporting" / "page.py"
    module.write_text(module.read_text() + "\n# an edit of the page code\n")
    assert ran(run_in(project, "dvc", "repro").stdout) == {"report@blood_cells"}  # no training, no evaluation
    assert page_file.read_bytes() == before  # no date, no path: the same inputs give the same bytes
    git(project, "checkout", "--", "medimage/reporting/page.py")
    run_in(project, "dvc", "repro")


@needs_chromium
def test_two_revisions_compared_on_the_same_test_images_and_on_different_ones(projects: dict[str, Path]) -> None:
    project = projects["blood_cells"]
    run_in(project, "dvc", "exp", "run", "-S", "train.image_size=48", "--name", "bigger")
    paired = project / "paired.html"
    run_in(
        project, "python", "-m", "stages.report", "blood_cells", "--compare", "HEAD", "bigger", "--output", str(paired)
    )
    opened = open_offline(paired)
    assert opened.console_errors == [] and opened.requests == []
    assert "paired.auc_difference" in opened.numbers and "paired.mcnemar_p" in opened.numbers
    p_value = float(opened.numbers["paired.mcnemar_p"])
    assert 0 <= p_value <= 1
    assert opened.numbers["paired.verdict"].startswith("The difference is")
    resamples = EvaluateSettings().bootstrap_resamples  # params.yaml's, the headline intervals' count
    assert f"{resamples:,} paired bootstrap resamples" in paired.read_text()
    first, second = (run_at(revision, "blood_cells", project) for revision in ("HEAD", "bigger"))
    assert first.origin.startswith("HEAD (") and second.origin.startswith("bigger (")
    resplit = [{**row, "path": f"other/{row['path']}"} for row in second.predictions]  # a re-split's test set
    text = comparison_page(first, dataclasses.replace(second, predictions=resplit), EvaluateSettings())
    assert "tested on different images" in text and "paired.auc_difference" not in text
    with pytest.raises(PipelineError, match="no revision 'nowhere'"):
        run_at("nowhere", "blood_cells", project)


def test_the_committed_dvc_plots_template_is_what_the_pinned_vl_convert_writes() -> None:
    committed = (ROOT / TEMPLATE).read_text(encoding="utf-8")
    assert committed == template(), f"{TEMPLATE} is stale: run python -m medimage.reporting.dvc_template"
    assert committed.count("{plot_divs}") == 1 and "{scripts}" not in committed  # DVC's CDN tags go in {scripts}
    assert not re.search(r"<script[^>]+src=", committed)


@needs_chromium
def test_dvc_plots_show_opens_offline_with_the_projects_template(projects: dict[str, Path]) -> None:
    project = projects["chest_xray"]
    run_in(project, "dvc", "plots", "show", "-o", "offline_plots")
    index = project / "offline_plots" / "index.html"
    assert "cdn.jsdelivr.net" not in index.read_text()
    opened = open_offline(index, figures="canvas, svg.marks, img", settle_ms=1500)
    assert opened.console_errors == [] and opened.requests == []
    charts = [(width, height) for tag, width, height in opened.figure_sizes if tag in ("canvas", "svg")]
    assert len(charts) >= 5 and all(width > 100 and height > 100 for width, height in charts), opened.figure_sizes


def test_a_run_without_per_image_predictions_gets_no_paired_figure(projects: dict[str, Path]) -> None:
    project = projects["blood_cells"]
    run = load_run(folder_reader(project), "blood_cells", "here", settings_from(folder_reader(project), "blood_cells"))
    older = dataclasses.replace(run, predictions=[], fetch={})  # as committed before either file existed
    text = comparison_page(older, run, EvaluateSettings())
    assert "no per-image test predictions" in text and "paired.auc_difference" not in text
    assert "not recorded" in page(older)
    assert 'data-key="paired.auc_difference"' in comparison_page(
        run, run, EvaluateSettings()
    )  # the same run twice: paired, no change
