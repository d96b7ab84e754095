"""Files edited by hand in the split view are noticed and relinked before the pixels are made; edits in place show in
DVC and are named."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from harness.project import file_digest, make_project, run_in, stage, update_yaml
from medimage import manifest

DATASET = "brain_tumor"
SMALL = {
    "datasets": [DATASET],
    "fetch": {"synthetic": {"images_per_class": 10, "image_size": 32}},
    "train": {"image_size": 32, "epochs": 1},
}


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


def test_deleted_added_and_replaced_view_files_are_noticed_and_relinked_before_the_pixels_are_made(
    project: Path,
) -> None:
    files = train_files(project)
    deleted, replaced = files[0], files[1]
    deleted_digest, replaced_digest = file_digest(deleted), file_digest(replaced)
    deleted.unlink()
    replaced.unlink()  # as an editor saves: a new file, leaving the interim file and the cache object alone
    replaced.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG" * 10)
    added = replaced.parent / "added_by_hand.jpg"
    added.write_bytes(replaced.read_bytes())
    # DVC tracks the manifest and the interim files, not the view: nothing it tracks has changed
    assert "up to date" in run_in(project, "dvc", "status", f"split@{DATASET}").stdout

    for run in ("first", "second"):
        made = stage(project, "pixels", DATASET)
        assert made.returncode == 0, made.stdout + made.stderr
        rebuilt = [line for line in made.stdout.splitlines() if "rebuilt the split folders" in line]
        if run == "first":  # the first run finds the edits ...
            assert len(rebuilt) == 1, made.stdout
            assert "1 missing" in rebuilt[0] and "1 not in the manifest" in rebuilt[0], rebuilt[0]
            assert "1 not the interim file" in rebuilt[0], rebuilt[0]
        else:  # ... and leaves a view that the next run accepts as it is
            assert rebuilt == [], made.stdout
        assert file_digest(deleted) == deleted_digest and file_digest(replaced) == replaced_digest
        assert not added.exists()
        assert deleted.stat().st_ino == interim_file(project, deleted).stat().st_ino  # relinked, not copied
    for loader_name in ("keras", "opencv"):  # training reads the pixels, whichever loader
        update_yaml(project / "params.yaml", {"train": {"loader": loader_name}})
        trained = stage(project, "train", DATASET)
        assert trained.returncode == 0, trained.stdout + trained.stderr


def interim_file(project: Path, view_file: Path) -> Path:
    processed = project / "data" / "processed" / DATASET
    relative = view_file.relative_to(processed).as_posix()
    (row,) = [row for row in manifest.read_processed(processed) if row.path == relative]
    return project / "data" / "interim" / DATASET / row.interim_path


def test_an_in_place_edit_shows_in_dvc_status_and_the_pixels_stage_names_the_file(project: Path) -> None:
    """The last test of the module: it damages the interim output (and DVC's cache object, which it links to)."""
    victim = train_files(project)[2]
    victim.chmod(0o644)
    victim.write_bytes(b"\xff\xd8\xff\xe0 edited in place" * 10)  # same inode: the interim file is edited too
    status = run_in(project, "dvc", "status", "--with-deps", f"train@{DATASET}").stdout
    # the edit reached DVC's cache object too (one inode), so DVC reports the output as no longer in its cache
    restructure = status.split(f"restructure@{DATASET}:\n", 1)[-1].split("\n", 2)
    assert restructure[0] == "\tchanged outs:" and restructure[1].endswith(f" data/interim/{DATASET}"), status
    failed = stage(project, "pixels", DATASET)
    errors = [line for line in failed.stderr.splitlines() if line.startswith("pixels: error:")]
    assert failed.returncode == 1 and len(errors) == 1, failed.stderr
    assert victim.name in errors[0] and f"dvc checkout --force data/interim/{DATASET}" in errors[0], errors[0]
