"""The committed dvc.lock is the truth: a fresh clone's `dvc repro` of the embedded default reproduces it exactly.

This clones the last commit (not the working tree): commit dvc.lock with every change that changes an output,
and this test fails, listing the outputs whose hashes moved, when that was forgotten.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from harness.project import ROOT, run_in


def output_hashes(lock_text: str) -> dict[str, str]:
    stages = yaml.safe_load(lock_text)["stages"]
    return {out["path"]: out["md5"] for stage in stages.values() for out in stage.get("outs", [])}


def test_a_fresh_clone_reproduces_the_committed_lock_bit_for_bit(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.fail("the project is not a git checkout: this test clones its last commit")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    committed = (clone / "dvc.lock").read_text()
    run_in(clone, "dvc", "repro")
    old, new = output_hashes(committed), output_hashes((clone / "dvc.lock").read_text())
    moved = {
        path: (old.get(path), new.get(path)) for path in sorted(set(old) | set(new)) if old.get(path) != new.get(path)
    }
    assert moved == {}, f"outputs whose bytes differ from the committed dvc.lock (old, new): {moved}"
    assert run_in(clone, "git", "diff", "--exit-code", "dvc.lock", check=False).returncode == 0
    assert run_in(clone, "git", "status", "--porcelain").stdout == ""
    assert "Data and pipelines are up to date" in run_in(clone, "dvc", "status").stdout
