"""The real DVC pipeline in a throw-away clone: runs everything once, then only what a change touches."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.conftest import files_under, run_in

DATASETS = ["chest_xray", "blood_cells", "covid19", "brain_tumor"]


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_repro_runs_each_stage_once_then_only_what_changed(small_project: Path) -> None:
    first = run_in(small_project, "dvc", "repro")
    assert ran(first.stdout) == {f"{stage}@{name}" for stage in ("fetch", "restructure") for name in DATASETS}
    for name in DATASETS:
        metrics = json.loads((small_project / "metrics" / name / "restructure.json").read_text())
        assert metrics["images"] > 0
        assert (small_project / "data" / "interim" / name / "manifest.csv").is_file()
    assert "Data and pipelines are up to date" in run_in(small_project, "dvc", "status").stdout

    assert ran(run_in(small_project, "dvc", "repro").stdout) == set()

    registry = small_project / "datasets" / "chest_xray.yaml"
    entry = yaml.safe_load(registry.read_text())
    entry["ignore"].append("*/val/*")  # a layout change: restructure only
    registry.write_text(yaml.safe_dump(entry, sort_keys=False))
    second = run_in(small_project, "dvc", "repro")
    assert ran(second.stdout) == {"restructure@chest_xray"}
    assert "val" not in json.loads((small_project / "metrics" / "chest_xray" / "restructure.json").read_text())["counts"]

    entry["synthetic"]["size_jitter"] = 0.1  # the archive itself changes: fetch and restructure of that dataset only
    registry.write_text(yaml.safe_dump(entry, sort_keys=False))
    assert ran(run_in(small_project, "dvc", "repro").stdout) == {"fetch@chest_xray", "restructure@chest_xray"}


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
    metrics = next(iter(shown.values()))["data"]["metrics/blood_cells/restructure.json"]["data"]
    assert metrics["counts"]["test_simple"]["NEUTROPHIL"] >= 2
