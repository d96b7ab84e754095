"""The real DVC pipeline in a throw-away clone: runs everything once, then only what a change touches."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import yaml

from harness.project import DEFAULT_DATASETS, files_under, make_project, run_in, stage, update_yaml


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_repro_runs_each_stage_once_then_only_what_changed(small_project: Path) -> None:
    """Up to split (training is covered in test_train_evaluate.py)."""
    first = run_in(small_project, "dvc", "repro", "split")
    assert ran(first.stdout) == {
        f"{stage}@{name}" for stage in ("fetch", "restructure", "split") for name in DEFAULT_DATASETS
    }
    for name in DEFAULT_DATASETS:
        metrics = json.loads((small_project / "metrics" / name / "restructure.json").read_text())
        assert metrics["images"] > 0
        assert (small_project / "data" / "interim" / name / "manifest.csv").is_file()
    assert "Data and pipelines are up to date" in run_in(small_project, "dvc", "status", "split").stdout

    assert ran(run_in(small_project, "dvc", "repro", "split").stdout) == set()

    registry = small_project / "datasets" / "chest_xray.yaml"
    entry = yaml.safe_load(registry.read_text())
    entry["ignore"].append("*/val/*")  # a layout change: restructure only
    registry.write_text(yaml.safe_dump(entry, sort_keys=False))
    second = run_in(small_project, "dvc", "repro", "split")
    assert ran(second.stdout) == {"restructure@chest_xray", "split@chest_xray"}
    report = small_project / "metrics" / "chest_xray" / "restructure_report.json"
    assert "val" not in json.loads(report.read_text())["counts"]

    entry["synthetic"]["size_jitter"] = 0.1  # the archive itself changes: fetch and restructure of that dataset only
    registry.write_text(yaml.safe_dump(entry, sort_keys=False))
    assert ran(run_in(small_project, "dvc", "repro", "split").stdout) == {
        "fetch@chest_xray",
        "restructure@chest_xray",
        "split@chest_xray",
    }


def test_outputs_are_cached_by_dvc_and_restored_by_checkout(small_project: Path) -> None:
    run_in(small_project, "dvc", "repro", "restructure@covid19")
    interim = small_project / "data" / "interim" / "covid19"
    before = files_under(interim)
    victim = next(path for path in interim.rglob("*.png"))
    victim.unlink()
    status = run_in(small_project, "dvc", "status").stdout
    assert "restructure@covid19" in status and "deleted" in status
    run_in(small_project, "dvc", "checkout", "restructure@covid19")
    assert files_under(interim) == before
    assert victim.stat().st_nlink == 2  # linked from DVC's cache (cache.type hardlink), not copied


def test_run_metrics_are_readable_by_dvc(small_project: Path) -> None:
    run_in(small_project, "dvc", "repro", "restructure@blood_cells")
    shown = json.loads(run_in(small_project, "dvc", "metrics", "show", "--json").stdout)
    files = next(iter(shown.values()))["data"]
    assert not any(name.endswith("_report.json") for name in files)  # reports are not declared metrics
    metrics = files["metrics/blood_cells/restructure.json"]["data"]
    assert metrics["images"] > 0 and set(metrics["skipped"]) == {
        "corrupt",
        "not_image",
        "unsupported",
        "ignored_by_layout",
        "unlabelled",
        "duplicate_copy",
    }
    assert "NEUTROPHIL" not in json.dumps(metrics)  # label names go to the report, never into metric keys
    report = json.loads((small_project / "metrics" / "blood_cells" / "restructure_report.json").read_text())
    assert report["counts"]["test_simple"]["NEUTROPHIL"] >= 2


def test_a_seed_change_resplits_and_retrains_without_restructuring_and_links_instead_of_copying(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "project",
        {
            "datasets": ["chest_xray", "covid19"],
            "fetch": {"synthetic": {"images_per_class": 12, "image_size": 32}},
            "train": {"model": "sklearn_linear", "loader": "opencv", "image_size": 32},
        },
    )
    run_in(project, "dvc", "repro")
    processed = project / "data" / "processed" / "chest_xray"
    manifest = (processed / "manifest.csv").read_text()
    audit = json.loads((project / "metrics" / "chest_xray" / "split.json").read_text())
    assert audit["group_overlap"]["new"] == 0 and audit["duplicate_overlap"]["new"] == 0
    links = json.loads((project / "metrics" / "chest_xray" / "split_report.json").read_text())["files"]
    assert links["copied"] == 0 and links["linked"] > 0
    assert (project / "plots" / "chest_xray" / "split_samples.png").read_bytes()[:4] == b"\x89PNG"

    run_in(project, "dvc", "repro", "-f", "-s", "split@chest_xray")
    assert (processed / "manifest.csv").read_text() == manifest  # same params, same bytes

    update_yaml(project / "params.yaml", {"split": {"seed": 7}})
    assert ran(run_in(project, "dvc", "repro").stdout) == {
        f"{stage}@{name}"
        for stage in ("split", "pixels", "train", "evaluate", "report")
        for name in ("chest_xray", "covid19")
    }
    assert (processed / "manifest.csv").read_text() != manifest
    pixels = (project / "data" / "pixels" / "chest_xray" / "train.npy").read_bytes()
    update_yaml(project / "params.yaml", {"train": {"learning_rate": 0.001, "epochs": 3, "augment": {"flip": False}}})
    assert ran(run_in(project, "dvc", "repro").stdout) == {  # a sweep reuses the pixels: nothing before train
        f"{stage}@{name}" for stage in ("train", "evaluate", "report") for name in ("chest_xray", "covid19")
    }
    assert (project / "data" / "pixels" / "chest_xray" / "train.npy").read_bytes() == pixels
    update_yaml(project / "params.yaml", {"train": {"image_size": 40}})
    assert "pixels@chest_xray" in ran(run_in(project, "dvc", "repro").stdout)
    assert np.load(project / "data" / "pixels" / "chest_xray" / "train.npy", mmap_mode="r").shape[1:] == (40, 40, 3)
    interim = project / "data" / "interim" / "chest_xray"
    for line in (processed / "manifest.csv").read_text().splitlines()[1:11]:
        path, interim_path = line.split(",")[0], line.split(",")[-2]
        assert (processed / path).stat().st_ino == (interim / interim_path).stat().st_ino


def test_invalid_split_params_stop_before_any_output(small_project: Path) -> None:
    run_in(small_project, "dvc", "repro", "restructure@blood_cells")
    update_yaml(small_project / "params.yaml", {"split": {"ratios": {"train": 0.6}}})  # with val 0.1, test 0.2
    result = stage(small_project, "split", "blood_cells")
    assert result.returncode == 1
    assert "split.ratios: ratios must sum to 1, got 0.9" in result.stderr and "params.yaml" in result.stderr
    update_yaml(small_project / "params.yaml", {"split": {"ratios": {"train": 0.7}, "strategy": "merge"}})
    update_yaml(small_project / "datasets" / "blood_cells.yaml", {"split": {"merge": {"test_simple": "holdout"}}})
    result = stage(small_project, "split", "blood_cells")
    assert (
        result.returncode == 1 and "split.merge: merge target 'holdout' of blood_cells does not exist" in result.stderr
    )
    assert not (small_project / "data" / "processed").exists()


def test_the_pixels_stage_rebuilds_a_damaged_view_as_copies_when_split_link_says_copy(tmp_path: Path) -> None:
    dataset = "brain_tumor"
    project = make_project(
        tmp_path / "project",
        {
            "datasets": [dataset],
            "fetch": {"synthetic": {"images_per_class": 10, "image_size": 32}},
            "split": {"link": "copy"},
            "train": {"image_size": 32, "model": "sklearn_linear", "loader": "opencv"},
        },
    )
    run_in(project, "dvc", "repro", f"split@{dataset}")
    view = project / "data" / "processed" / dataset
    files = sorted(path for path in view.rglob("*.jpg") if path.is_file())
    assert files and all(path.stat().st_nlink == 1 for path in files)  # split wrote copies
    files[0].unlink()
    rebuilt = stage(project, "pixels", dataset)
    assert "rebuilt the split folders" in rebuilt.stdout
    again = sorted(path for path in view.rglob("*.jpg") if path.is_file())
    assert again == files and all(path.stat().st_nlink == 1 for path in again)  # copies again, not hardlinks
