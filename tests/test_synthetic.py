"""The synthetic archives reproduce the real layouts and restructure to exactly the planned counts."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from harness.project import DEFAULT_DATASETS, ROOT, files_under
from medimage import manifest
from medimage.archives import synthetic
from medimage.archives.layout import Layout
from medimage.archives.unpacking import restructure
from medimage.settings.fetch import SyntheticSettings
from medimage.settings.project import DatasetSpec, load_params
from medimage.settings.restructure import RestructureSettings
from medimage.settings.split import split_settings
from medimage.splitting import matching
from medimage.splitting.resplit import split_dataset, write_split

KNOBS = SyntheticSettings(images_per_class=12, image_size=40, seed=3)


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory, registry: dict[str, DatasetSpec]) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("archives")
    return {name: _write(registry[name], folder / f"{name}.zip") for name in DEFAULT_DATASETS}


def _write(dataset: DatasetSpec, path: Path) -> Path:
    return _write_with(dataset, KNOBS, path)


def _write_with(dataset: DatasetSpec, knobs: SyntheticSettings, path: Path) -> Path:
    synthetic.write_archive(dataset, knobs, path)
    return path


def _members(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


@pytest.mark.parametrize("name", DEFAULT_DATASETS)
def test_restructure_gives_exactly_the_planned_counts(
    name: str, archives: dict[str, Path], registry: dict[str, DatasetSpec], tmp_path: Path
) -> None:
    dataset = registry[name]
    layout = Layout(dataset)
    expected = {
        layout.canonical_split(split if "{split}" in dataset.synthetic.member else None): labels
        for split, labels in synthetic.planned_counts(dataset.synthetic, KNOBS.images_per_class).items()
    }
    metrics = restructure(archives[name], dataset, RestructureSettings(), tmp_path / name)

    assert metrics["counts"] == {split: dict(sorted(labels.items())) for split, labels in expected.items()}
    assert metrics["skipped"]["corrupt"] == metrics["skipped"]["not_image"] == 0
    originals = {path for path in files_under(tmp_path / name) if path.startswith("originals/")}
    kept = {f"originals/{image.member.rsplit('/', 1)[1]}" for image in synthetic.plan_originals(dataset.synthetic)}
    assert originals - {"originals/manifest.csv"} == kept and metrics["originals"] == len(kept)
    on_disk = files_under(tmp_path / name) - {"manifest.csv", "skipped.csv", "metadata.csv"} - originals
    assert len(on_disk) == metrics["images"] == sum(sum(labels.values()) for labels in expected.values())
    with (tmp_path / name / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["path"] for row in rows} == on_disk
    assert all(len(row["sha256"]) == 64 and int(row["width"]) > 0 for row in rows)


def test_chest_xray_quirks_exist_in_the_archive_but_never_reach_the_output(
    archives: dict[str, Path], registry: dict[str, DatasetSpec], tmp_path: Path
) -> None:
    members = _members(archives["chest_xray"])
    assert any(member.startswith("chest_xray/chest_xray/train/") for member in members)
    assert any("/__MACOSX/" in member and "/._" in member for member in members)
    assert "chest_xray/.DS_Store" in members
    assert any("person" in member and "_virus_" in member for member in members)

    metrics = restructure(archives["chest_xray"], registry["chest_xray"], RestructureSettings(), tmp_path / "out")
    with (tmp_path / "out" / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert not any(
        "chest_xray/chest_xray" in row["member"] or "__MACOSX" in row["member"] or "._" in row["path"] for row in rows
    )
    assert (
        metrics["ignored_by_rule"]["chest_xray/chest_xray/*"] > metrics["images"]
    )  # the nested copy (+ its .DS_Store)
    # patient ids recur: one person has several images, and the same id appears in train and test
    pneumonia = [row for row in rows if row["label"] == "PNEUMONIA"]
    groups = [row["group"] for row in pneumonia]
    assert all(groups) and len(set(groups)) < len(groups)
    splits_of = {}
    for row in pneumonia:
        splits_of.setdefault(row["group"], set()).add(row["source_split"])
    assert any(len(splits) > 1 for splits in splits_of.values())
    assert {row["channels"] for row in rows if row["source_split"] == "train"} == {"1", "3"}  # grey and grey-as-RGB


def test_chest_xray_test_split_is_acquired_differently(
    archives: dict[str, Path], tmp_path: Path, registry: dict[str, DatasetSpec]
) -> None:
    restructure(archives["chest_xray"], registry["chest_xray"], RestructureSettings(), tmp_path / "out")

    def contrast(split: str) -> float:
        images = [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for path in (tmp_path / "out" / split).rglob("*.jpeg")]
        return float(np.mean([image.std() for image in images]))

    assert contrast("test") < 0.75 * contrast("train")


def test_other_quirks(archives: dict[str, Path], registry: dict[str, DatasetSpec]) -> None:
    covid = _members(archives["covid19"])
    assert "COVID-19_Radiography_Dataset/Viral Pneumonia/images/Viral Pneumonia-1.png" in covid
    assert "COVID-19_Radiography_Dataset/Viral Pneumonia/masks/Viral Pneumonia-1.png" in covid
    assert "COVID-19_Radiography_Dataset/Viral Pneumonia.metadata.xlsx" in covid
    assert "COVID-19_Radiography_Dataset/README.md.txt" in covid
    blood = _members(archives["blood_cells"])
    assert any("/images/TEST_SIMPLE/" in member for member in blood)
    originals = sorted(member for member in blood if member.startswith("dataset-master/dataset-master/JPEGImages/"))
    spec = registry["blood_cells"].synthetic
    assert spec is not None and spec.sources_per_label is not None
    assert len(originals) == 4 * spec.sources_per_label  # one per source of each label
    assert originals[0] == "dataset-master/dataset-master/JPEGImages/BloodImage_00000.jpg"
    brain = [image.member for image in synthetic.plan_images(registry["brain_tumor"].synthetic, images_per_class=40)]
    assert "Training/glioma/Tr-glTr_0009.jpg" in brain and "Training/glioma/Tr-gl_0010.jpg" in brain
    assert "Testing/notumor/Te-noTr_0000.jpg" in brain


def test_blood_cells_train_and_test_share_augmented_originals(registry: dict[str, DatasetSpec]) -> None:
    planned = synthetic.plan_images(registry["blood_cells"].synthetic, KNOBS.images_per_class)
    sources = {
        split: {(image.label, image.source) for image in planned if image.archive_split == split}
        for split in ("TRAIN", "TEST")
    }
    assert sources["TRAIN"] & sources["TEST"]


def test_a_pooled_split_of_the_blood_cells_stand_in_keeps_each_original_and_its_copies_in_one_split(
    registry: dict[str, DatasetSpec], tmp_path: Path
) -> None:
    """The stand-in ships its originals as the real archive does; split matches every copy to its original."""
    dataset = registry["blood_cells"]
    knobs = SyntheticSettings(images_per_class=40, image_size=64, seed=3)
    archive = _write_with(dataset, knobs, tmp_path / "blood.zip")
    restructure(archive, dataset, RestructureSettings(), tmp_path / "interim")
    settings = split_settings(load_params(ROOT).split, dataset)
    metrics = split_dataset("blood_cells", settings, tmp_path / "interim", tmp_path / "processed", tmp_path / "s.png")

    rows = manifest.read_processed(tmp_path / "processed")
    planned = {image.member: image for image in synthetic.plan_images(dataset.synthetic, knobs.images_per_class)}
    splits_of: dict[tuple[str, int | None], set[str]] = {}
    for row in rows:
        image = planned[row.member]
        splits_of.setdefault((image.label, image.source), set()).add(row.split)
    assert metrics["matched_originals"] == len(rows)
    assert [source for source, splits in splits_of.items() if len(splits) > 1] == []
    assert metrics["copy_overlap"]["new"] == 0
    assert metrics["copy_overlap"]["original"] > 0  # the archive's own TRAIN and TEST share originals


def test_archives_are_deterministic_and_follow_the_seed(
    registry: dict[str, DatasetSpec], archives: dict[str, Path], tmp_path: Path
) -> None:
    again = _write(registry["brain_tumor"], tmp_path / "again.zip")
    assert again.read_bytes() == archives["brain_tumor"].read_bytes()
    other_seed = tmp_path / "other.zip"
    synthetic.write_archive(registry["brain_tumor"], KNOBS.model_copy(update={"seed": 4}), other_seed)
    assert _members(other_seed) == _members(again)
    assert other_seed.read_bytes() != again.read_bytes()


def test_real_scale_counts_match_the_real_archive(registry: dict[str, DatasetSpec]) -> None:
    spec = registry["chest_xray"].synthetic
    counts = synthetic.planned_counts(spec, images_per_class=2928)  # 5,856 images over 2 labels, as on Kaggle
    assert counts == spec.counts
    assert sum(sum(labels.values()) for labels in counts.values()) == 5856


def test_a_resplit_of_the_same_images_searches_no_copies_again_and_new_images_alone_get_keypoints(
    registry: dict[str, DatasetSpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy cache (medimage/splitting/copy_cache.py): keypoints by sha256, pairs by the set of images searched.
    What split writes is the same with it, without it, and from a cache entry cut short."""
    dataset = registry["blood_cells"]
    archive = _write_with(dataset, SyntheticSettings(images_per_class=20, image_size=64, seed=5), tmp_path / "b.zip")
    interim = tmp_path / "interim"
    restructure(archive, dataset, RestructureSettings(), interim)
    settings = split_settings(load_params(ROOT).split, dataset)
    cache = tmp_path / "cache"
    computed: list[int] = []
    features_of = matching.features_of

    def counted(count: int, *args: object) -> list[matching.Features]:
        computed.append(count)
        return features_of(count, *args)

    monkeypatch.setattr(matching, "features_of", counted)
    uncached = write_split(settings, "blood_cells", interim, tmp_path / "a").copies
    first = write_split(settings, "blood_cells", interim, tmp_path / "b", cache).copies
    rows = manifest.read_interim(interim)
    assert first == uncached and sum(computed) == 2 * (len(rows) + len(manifest.read_originals(interim)))
    computed.clear()
    reseeded = write_split(settings.model_copy(update={"seed": 9}), "blood_cells", interim, tmp_path / "c", cache)
    assert computed == [] and reseeded.copies == first  # another seed: nothing searched again

    kept = manifest.read_interim(interim)[1:]  # one image fewer: the pairs are searched again, keypoints loaded
    manifest.write_manifest(interim, kept, manifest.InterimRow)
    fewer = write_split(settings, "blood_cells", interim, tmp_path / "d", cache).copies
    assert computed == [] and len(list((cache / "copies").iterdir())) == 2
    for entry in (cache / "copies").iterdir():
        entry.write_text(entry.read_text()[:10])  # cut short (a crash mid-write would leave no file: atomic)
    again = write_split(settings, "blood_cells", interim, tmp_path / "e", cache).copies
    assert computed == [] and again == fewer == write_split(settings, "blood_cells", interim, tmp_path / "f").copies
