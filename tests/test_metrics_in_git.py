"""Metrics and plot data live in git (`cache: false` in dvc.yaml): a clone with no DVC cache and no remote still
shows and compares every commit's numbers and curves. Models, data and PNG galleries stay in DVC's cache."""

from __future__ import annotations

import json
from pathlib import Path

from harness.project import git, make_project, run_in, update_yaml

DATASET = "brain_tumor"
FAST = {
    "datasets": [DATASET],
    "fetch": {"synthetic": {"images_per_class": 10, "image_size": 32}},
    "train": {"image_size": 32, "epochs": 2, "model": "sklearn_linear", "loader": "opencv"},
}
EVAL = f"metrics/{DATASET}/eval.json"
SPLIT = f"metrics/{DATASET}/split.json"


def commit_run(project: Path, message: str) -> None:
    run_in(project, "dvc", "repro")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", message)


def test_a_clone_without_the_dvc_cache_shows_and_diffs_two_commits_metrics_and_plots(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", FAST)
    commit_run(project, "first run")
    tracked = set(run_in(project, "git", "ls-files", "metrics", "plots").stdout.split())
    assert {EVAL, SPLIT, f"plots/{DATASET}/roc.csv", f"plots/{DATASET}/calibration.csv"} <= tracked
    assert any(path.startswith(f"plots/{DATASET}/training/") and path.endswith(".tsv") for path in tracked)  # DVCLive
    assert not any(path.endswith(".png") for path in tracked)  # galleries stay in the cache
    update_yaml(project / "params.yaml", {"split": {"seed": 7}})
    commit_run(project, "other seed")

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project), str(clone))
    assert not (clone / ".dvc" / "cache").exists() and not (clone / "models").exists()

    shown = json.loads(run_in(clone, "dvc", "metrics", "show", "-A", "--json").stdout)
    revisions = [revision for revision, found in shown.items() if "accuracy" in json.dumps(found)]
    assert len(revisions) >= 2, json.dumps(shown)[:2000]
    diff = json.loads(run_in(clone, "dvc", "metrics", "diff", "HEAD~1", "--json").stdout)
    assert EVAL in diff and SPLIT in diff and "accuracy" in diff[EVAL]
    assert diff[SPLIT], "the seed change moved no split metric"

    plots = json.loads(run_in(clone, "dvc", "plots", "diff", "HEAD~1", "--json", "--split").stdout)
    missing = {error["name"] for error in plots.get("errors", [])}
    assert all(name.endswith(".png") for name in missing)  # only the galleries need the cache
    for name in ("roc.csv", "precision_recall.csv", "calibration.csv", "confusion.csv"):
        (entry,) = plots["data"][f"plots/{DATASET}/{name}"]
        rows = entry["anchor_definitions"]["<DVC_METRIC_DATA>"]
        assert {row["rev"] for row in rows} == {"HEAD~1", "workspace"}, name
    table = run_in(clone, "dvc", "exp", "show", "--no-pager", "--md", "-n", "2").stdout
    assert table.count("| ") > 2 and "accuracy" in table
