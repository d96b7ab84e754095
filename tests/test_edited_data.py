"""Files edited by hand under data/processed are seen by DVC, restored by it, and named in errors."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from tests.project import make_project, run_in, stage, update_yaml

DATASET = "brain_tumor"
SMALL = {
    "datasets": [DATASET],
    "fetch": {"synthetic": {"images_per_class": 10, "image_size": 32}},
    "train": {"image_size": 32, "epochs": 1},
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = make_project(tmp_path_factory.mktemp("edited") / "project", SMALL)
    run_in(folder, "dvc", "repro", f"split@{DATASET}")
    return folder


def train_files(project: Path) -> list[Path]:
    return sorted((project / "data" / "processed" / DATASET / "train").rglob("*.jpg"))


def test_processed_files_are_read_only_so_an_editor_cannot_corrupt_the_shared_cache_in_place(project: Path) -> None:
    for path in train_files(project)[:5]:
        assert path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) == 0, oct(path.stat().st_mode)
        assert path.stat().st_nlink >= 2  # the same inode as the DVC cache object


def test_deleted_added_and_corrupted_files_are_reported_restored_and_named(project: Path) -> None:
    files = train_files(project)
    deleted, corrupted = files[0], files[1]
    deleted_digest, corrupted_digest = digest(deleted), digest(corrupted)
    deleted.unlink()
    corrupted.unlink()  # as an editor saves: a new file, leaving the cache object alone
    corrupted.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG" * 10)
    added = corrupted.parent / "added_by_hand.jpg"
    added.write_bytes(corrupted.read_bytes())

    status = run_in(project, "dvc", "status", f"split@{DATASET}")
    assert "modified:" in status.stdout and f"data/processed/{DATASET}" in status.stdout, status.stdout

    for loader_name in ("keras", "opencv"):
        update_yaml(project / "params.yaml", {"train": {"loader": loader_name}})
        failed = stage(project, "train", DATASET)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "Traceback" not in failed.stderr, failed.stderr
        errors = [line for line in failed.stderr.splitlines() if line.startswith("train: error:")]
        assert len(errors) == 1, failed.stderr
        # keras lists the folder (it never sees the deleted file); ours reads the manifest, stops at the first bad row
        named = [corrupted.name] if loader_name == "keras" else [deleted.name, corrupted.name]
        assert any(name in errors[0] for name in named), errors[0]
        assert "dvc checkout" in errors[0]
        assert not (project / "models" / DATASET).exists()

    careful = run_in(
        project, "dvc", "checkout", f"split@{DATASET}", check=False
    )  # DVC will not drop hand edits unasked
    assert careful.returncode != 0 and corrupted.name in careful.stderr and added.name in careful.stderr, careful.stderr
    assert added.exists()
    run_in(project, "dvc", "checkout", "--force", f"split@{DATASET}")
    assert digest(deleted) == deleted_digest and digest(corrupted) == corrupted_digest
    assert not added.exists()
    assert "up to date" in run_in(project, "dvc", "status", f"split@{DATASET}").stdout
