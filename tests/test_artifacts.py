"""Models are DVC artifacts: one per dataset in dvc.yaml, downloadable by name from a clone via its remote."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from harness.project import ROOT, digests, git, make_project, run_in

TINY = {
    "datasets": ["chest_xray"],
    "fetch": {"synthetic": {"images_per_class": 10, "image_size": 32}},
    "train": {"model": "sklearn_linear", "loader": "opencv", "image_size": 32},
}


def test_every_dataset_has_a_model_artifact() -> None:
    artifacts = yaml.safe_load((ROOT / "dvc.yaml").read_text())["artifacts"]
    by_path = {entry["path"]: entry for entry in artifacts.values()}
    for dataset in yaml.safe_load((ROOT / "params.yaml").read_text())["datasets"]:
        entry = by_path.get(f"models/{dataset}")
        assert entry is not None, f"dvc.yaml declares no artifact for models/{dataset}"
        assert entry["type"] == "model" and entry["desc"] and dataset in entry["labels"]


def test_artifacts_get_downloads_the_model_by_name_through_the_remote(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", TINY)
    run_in(project, "dvc", "repro")
    run_in(project, "dvc", "remote", "add", "--default", "shelf", str(tmp_path / "remote"))
    run_in(project, "dvc", "push")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "trained; remote")
    # registering a version is a git tag in the model registry's (GTO's) format; `gto register` makes the same
    git(project, "tag", "-a", "chest-xray-classifier@v1.0.0", "-m", "Registering artifact chest-xray-classifier")
    (tmp_path / "elsewhere").mkdir()
    expected = digests(project / "models" / "chest_xray")
    shutil.rmtree(project / ".dvc" / "cache")  # the model's bytes are now only in the remote
    shutil.rmtree(project / "models")

    get = ["dvc", "artifacts", "get", str(project), "chest-xray-classifier"]
    run_in(tmp_path / "elsewhere", *get, "-o", "model")  # the latest registered version
    assert set(expected) == {"labels.json", "model.joblib", "train.json"}
    assert digests(tmp_path / "elsewhere" / "model") == expected
    run_in(tmp_path / "elsewhere", *get, "--rev", "v1.0.0", "-o", "v1")
    assert digests(tmp_path / "elsewhere" / "v1") == expected
    run_in(tmp_path / "elsewhere", "dvc", "get", str(project), "models/chest_xray", "-o", "by-path")
    assert digests(tmp_path / "elsewhere" / "by-path") == expected
