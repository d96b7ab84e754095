"""The committed dvc.lock is the truth: a fresh clone's `dvc repro` of the embedded default reproduces it exactly.

This clones the last commit (not the working tree): commit dvc.lock with every change that changes an output,
and this test fails, listing the outputs whose hashes moved, when that was forgotten. To stay within the suite's
time, it reproduces the data stages of every default dataset and the model stages (train, evaluate, report) of
one; for the others it checks that the lock records the current code and params of every stage (no dependency
of any stage changed since it ran), so a forgotten lock shows there too. `make run` reproduces all of them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.project import DEFAULT_DATASETS, ROOT, run_in

MODEL_DATASET = DEFAULT_DATASETS[0]  # chest_xray: binary, so the threshold and Grad-CAM paths too
TARGETS = [f"split@{dataset}" for dataset in DEFAULT_DATASETS] + [f"report@{MODEL_DATASET}"]


def output_hashes(lock_text: str) -> dict[str, str]:
    stages = yaml.safe_load(lock_text)["stages"]
    return {out["path"]: out["md5"] for stage in stages.values() for out in stage.get("outs", [])}


def stale_stages(clone: Path) -> dict[str, list]:
    """Stages whose code, params or command differ from what dvc.lock recorded (outputs not yet built don't count)."""
    status = json.loads(run_in(clone, "dvc", "status", "--json").stdout or "{}")
    stale = {}
    for stage, changes in status.items():
        kept = [
            change
            for change in changes
            if not isinstance(change, dict)
            or set(change) - {"changed deps", "changed outs"}
            or any(state != "deleted" for state in change.get("changed deps", {}).values())
        ]
        if kept:
            stale[stage] = kept
    return stale


def test_a_fresh_clone_reproduces_the_committed_lock_bit_for_bit(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.fail("the project is not a git checkout: this test clones its last commit")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    committed = (clone / "dvc.lock").read_text()
    assert stale_stages(clone) == {}, "dvc.lock records other code or params than the commit holds: run dvc repro"
    run_in(clone, "dvc", "repro", *TARGETS)
    old, new = output_hashes(committed), output_hashes((clone / "dvc.lock").read_text())
    moved = {
        path: (old.get(path), new.get(path)) for path in sorted(set(old) | set(new)) if old.get(path) != new.get(path)
    }
    assert moved == {}, f"outputs whose bytes differ from the committed dvc.lock (old, new): {moved}"
    built = {path for path in new if (clone / path).exists()}
    assert {f"models/{MODEL_DATASET}", f"reports/{MODEL_DATASET}.html"} | {
        f"data/processed/{dataset}/manifest.csv" for dataset in DEFAULT_DATASETS
    } <= built
    assert run_in(clone, "git", "diff", "--exit-code", "dvc.lock", check=False).returncode == 0
    assert run_in(clone, "git", "status", "--porcelain").stdout == ""
    assert "Data and pipelines are up to date" in run_in(clone, "dvc", "status", *TARGETS).stdout
