"""Audit scores on constructed cases, dHash copies, and hardlinked (or copied) split folders."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from medimage.decoding import reduction_factor
from medimage.errors import PipelineError
from medimage.splitting import audit
from medimage.splitting.features import dhash, dhash_copy_pairs, look_features, read_grey
from medimage.splitting.materialising import materialise, target_paths


def _scene(rng: np.random.Generator, contrast: float = 1.0, size: int = 64) -> np.ndarray:
    image = cv2.resize(rng.uniform(40, 200, (6, 6)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    cv2.circle(image, tuple(int(v) for v in rng.integers(10, size - 10, 2)), 8, 230, -1)
    return np.clip((image - 128) * contrast + 128 + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)


def test_shift_auc_is_near_one_half_for_alike_splits_and_near_one_for_a_contrast_change() -> None:
    rng = np.random.default_rng(0)
    alike = np.array([look_features(_scene(rng)) for _ in range(200)])
    is_test = np.arange(200) % 4 == 0
    assert abs(audit.shift_auc(alike, is_test, seed=0) - 0.5) < 0.12

    shifted = np.array([look_features(_scene(rng, contrast=0.5 if test else 1.0)) for test in is_test])
    assert audit.shift_auc(shifted, is_test, seed=0) > 0.95
    assert audit.shift_auc(alike[:6], is_test[:6], seed=0) is None  # too few images to say


def test_shortcut_auc_sees_metadata_that_gives_the_label_away() -> None:
    rng = np.random.default_rng(1)
    labels = np.array(["NORMAL", "PNEUMONIA"] * 100)
    width = np.where(labels == "NORMAL", 1600, 1100) + rng.normal(0, 150, 200)
    honest = np.column_stack(
        [rng.normal(1300, 200, 200), rng.normal(1000, 200, 200), np.ones(200), rng.normal(2e5, 3e4, 200)]
    )
    leaky = honest.copy()
    leaky[:, 0] = width
    train, test = np.arange(200) % 5 != 0, np.arange(200) % 5 == 0
    assert audit.shortcut_auc(leaky, labels, train, test, seed=0) > 0.9
    assert abs(audit.shortcut_auc(honest, labels, train, test, seed=0) - 0.5) < 0.2
    no_pair = np.zeros(200, dtype=bool)
    assert audit.shortcut_auc(leaky, labels, no_pair, no_pair, seed=0) > 0.9  # cross-validated instead
    four = np.array(["a", "b", "c", "d"] * 50)
    assert (
        audit.shortcut_auc(np.column_stack([np.arange(200) % 4 * 100.0, np.ones(200)]), four, train, test, seed=0)
        > 0.95
    )


def test_overlap_and_counts() -> None:
    splits = ["train", "train", "test", "test", "val"]
    assert audit.overlap(splits, ["p1", "p2", "p1", "", ""]) == 1
    assert audit.split_counts(splits, ["a", "b", "a", "a", "b"]) == {
        "test": {"a": 2},
        "train": {"a": 1, "b": 1},
        "val": {"b": 1},
    }
    chosen = audit.sample_indices(["train"] * 50 + ["test"] * 5, ("train", "test"), per_split=10, seed=3)
    assert len(chosen) == 15 and list(chosen) == sorted(chosen)


def test_dhash_finds_augmented_copies_but_not_other_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    original = _scene(rng, size=128)
    brighter = np.clip(original.astype(int) + 12, 0, 255).astype(np.uint8)
    other = _scene(rng, size=128)
    hashes = np.array([dhash(original), dhash(brighter), dhash(other)], dtype=np.uint64)
    assert dhash_copy_pairs(hashes, max_distance=4) == [(0, 1)]
    many = np.random.default_rng(3).integers(0, 2**63, 1500, dtype=np.uint64)
    many[1400] = many[7] ^ np.uint64(0b101)  # two bits apart
    assert dhash_copy_pairs(many, max_distance=3, chunk=256) == [(7, 1400)]


def test_reduced_decoding_keeps_the_target_size(tmp_path: Path) -> None:
    path = tmp_path / "big image.jpg"
    cv2.imwrite(str(path), np.full((1000, 1300), 128, np.uint8))
    assert (
        reduction_factor(1300, 1000, 64) == 8
        and reduction_factor(100, 90, 64) == 1
        and reduction_factor(300, 260, 64) == 4
        and reduction_factor(300, 200, 64) == 2
    )
    assert read_grey(path, 1300, 1000, 64).shape == (125, 163)
    path.write_bytes(b"junk")
    with pytest.raises(PipelineError, match="cannot decode image .*big image.jpg: the file is corrupt"):
        read_grey(path, 1300, 1000, 64)


def test_target_paths_disambiguate_names_shared_by_two_archive_splits() -> None:
    targets = target_paths(
        ["train", "train", "test"],
        ["A", "A", "A"],
        ["train/A/x.jpg", "val/A/x.jpg", "test/A/x.jpg"],
        ["train", "val", "test"],
    )
    assert targets == ["train/A/x.jpg", "train/A/val_x.jpg", "test/A/x.jpg"]


def _sources(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True)
    for index in range(count):
        (folder / f"{index}.jpg").write_bytes(b"image %d" % index)
    return sorted(folder.iterdir())


def test_materialise_hardlinks(tmp_path: Path) -> None:
    sources = _sources(tmp_path / "interim", 5)
    report = materialise(sources, [f"train/A/{path.name}" for path in sources], tmp_path / "processed")
    assert (report.linked, report.copied) == (5, 0)
    assert all(
        (tmp_path / "processed" / "train" / "A" / path.name).stat().st_ino == path.stat().st_ino for path in sources
    )


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second file system (/dev/shm) to cross")
def test_materialise_copies_across_file_systems_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        if os.stat(other).st_dev == tmp_path.stat().st_dev:
            pytest.skip("/dev/shm is on the same file system here")
        sources = _sources(Path(other) / "interim", 4)
        report = materialise(sources, [f"test/B/{path.name}" for path in sources], tmp_path / "processed")
        assert (report.linked, report.copied) == (0, 4)
        assert (tmp_path / "processed" / "test" / "B" / "3.jpg").read_bytes() == b"image 3"
    warnings = [record for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1 and "cannot hardlink here" in warnings[0].getMessage()
