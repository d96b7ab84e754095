"""Real Kaggle images packed into their Kaggle layouts, and a fifth dataset added with YAML only.

Skipped where the real-image folder, harness.project.REALDATA, is absent (set SHARED_DIR to point elsewhere).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from harness.project import REALDATA, make_project, run_in
from medimage import manifest
from medimage.archives.unpacking import restructure
from medimage.settings.project import DatasetSpec
from medimage.settings.restructure import RestructureSettings

pytestmark = pytest.mark.skipif(not REALDATA.is_dir(), reason=f"real sample images not found at {REALDATA}")

# Kaggle's navoneel/brain-mri-images-for-brain-tumor-detection, described only here: no Python knows it.
BRAIN_MRI = {
    "kaggle": "navoneel/brain-mri-images-for-brain-tumor-detection/versions/1",
    "archive": "brain-mri-images-for-brain-tumor-detection.zip",
    "fetch": None,
    "layout": ["{label}/{file}"],
    "extensions": [".jpg", ".jpeg", ".png"],
    "ignore": ["brain_tumor_dataset/*", "__MACOSX/*", "._*", ".DS_Store"],
    "split_map": {},
    "group_regex": None,
    "labels": None,
    "sources": None,
    "split": {"strategy": "pool"},
    "synthetic": {
        "counts": {"all": {"yes": 155, "no": 98}},
        "member": "{label}/{name}",
        "names": {
            "yes": ["Y{n}.jpg", "Y{n}.JPG", "Y{n}.jpeg"],
            "no": ["{n} no.jpeg", "no {n}.jpg", "N{n}.JPG", "No{n}.jpg"],
        },
        "channels": 3,
        "size_jitter": 0.4,
        "copies": [{"source": "", "target": "brain_tumor_dataset/"}],
    },
}


def pack(archive: Path, entries: dict[str, Path]) -> Path:
    """Zip real files under the member names they have in the Kaggle archive."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        for member, source in entries.items():
            handle.write(source, member)
    return archive


def tree(folder: Path, prefix: str) -> dict[str, Path]:
    return {prefix + path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*")) if path.is_file()}


def test_real_blood_cells_restructure(tmp_path: Path, registry: dict[str, DatasetSpec]) -> None:
    source = REALDATA / "blood-cells"
    bccd = sorted((REALDATA / "BCCD_Dataset" / "BCCD" / "JPEGImages").glob("*.jpg"))[:20]
    members = {
        **tree(source / "dataset2-master", "dataset2-master/dataset2-master/"),
        "dataset-master/dataset-master/labels.csv": source / "dataset-master" / "labels.csv",
        **{f"dataset-master/dataset-master/JPEGImages/{path.name}": path for path in bccd},
    }
    archive = pack(tmp_path / "blood-cells.zip", members)
    metrics = restructure(archive, registry["blood_cells"], RestructureSettings(), tmp_path / "out")
    assert metrics["counts"] == {
        "test": {"EOSINOPHIL": 10, "LYMPHOCYTE": 10, "MONOCYTE": 10, "NEUTROPHIL": 10},
        "test_simple": {"EOSINOPHIL": 13, "LYMPHOCYTE": 6, "MONOCYTE": 4, "NEUTROPHIL": 48},
        "train": {"EOSINOPHIL": 30, "LYMPHOCYTE": 30, "MONOCYTE": 30, "NEUTROPHIL": 30},
    }
    assert metrics["ignored_by_rule"] == {"dataset-master/*": 1}  # labels.csv; the 20 originals are kept apart
    assert metrics["originals"] == 20
    originals = manifest.read_originals(tmp_path / "out")
    assert [row.path for row in originals] == [f"originals/{path.name}" for path in bccd]
    assert (tmp_path / "out" / originals[0].path).read_bytes() == bccd[0].read_bytes()
    assert (tmp_path / "out" / "train" / "EOSINOPHIL" / "_0_1169.jpeg").read_bytes() == (
        source / "dataset2-master" / "images" / "TRAIN" / "EOSINOPHIL" / "_0_1169.jpeg"
    ).read_bytes()
    assert {(row.width, row.height, row.channels) for row in manifest.read_interim(tmp_path / "out")} == {(320, 240, 3)}


def test_real_covid_radiography_restructure(tmp_path: Path, registry: dict[str, DatasetSpec]) -> None:
    source = REALDATA / "covid19-radiography-DERIVATIVE-resized224" / "COVID-19_Radiography_Dataset"
    members = {
        f"COVID-19_Radiography_Dataset/{path.parent.name}/images/{path.name}": path
        for path in sorted(source.rglob("*.png"))
    }
    members["COVID-19_Radiography_Dataset/COVID/masks/COVID-1.png"] = source / "COVID" / "COVID-1.png"
    archive = pack(tmp_path / "covid.zip", members)
    metrics = restructure(archive, registry["covid19"], RestructureSettings(), tmp_path / "out")
    assert metrics["counts"] == {"all": {"COVID": 20, "Normal": 20}}
    assert metrics["ignored_by_rule"] == {"*/masks/*": 1}
    assert (tmp_path / "out" / "all" / "COVID" / "COVID-1.png").is_file()


def test_a_fifth_dataset_needs_only_yaml_and_runs_under_dvc_on_real_images(tmp_path: Path) -> None:
    source = REALDATA / "brain-mri-yes-no"
    images = {**tree(source / "yes", "yes/"), **tree(source / "no", "no/")}
    archive = pack(
        tmp_path / "brain-mri-images-for-brain-tumor-detection.zip",
        {**images, **{f"brain_tumor_dataset/{m}": p for m, p in images.items()}},
    )
    project = make_project(
        tmp_path / "project",
        {"datasets": ["brain_mri"], "fetch": {"source": "path", "paths": {"brain_mri": str(archive)}}},
        datasets={"brain_mri": BRAIN_MRI},
    )
    run_in(project, "dvc", "repro")

    metrics = json.loads((project / "metrics" / "brain_mri" / "restructure.json").read_text())
    report = json.loads((project / "metrics" / "brain_mri" / "restructure_report.json").read_text())
    assert report["counts"] == {"all": {"no": 40, "yes": 40}}
    assert report["ignored_by_rule"] == {"brain_tumor_dataset/*": 80}  # the duplicated copy never doubles the counts
    assert metrics["duplicates"] == 8  # yes/Y14=Y17, Y15=Y181, Y30=Y54, no/No11='no 7.jpeg'
    assert metrics["extension_mismatch"] == 2  # 'no 96.jpg' and 'no 98.jpg' are PNG data
    rows = {row.path: row for row in manifest.read_interim(project / "data" / "interim" / "brain_mri")}
    assert rows["all/no/no 96.jpg"].format == "PNG" and rows["all/no/no 96.jpg"].channels == 4
    assert rows["all/yes/Y14.jpg"].sha256 == rows["all/yes/Y17.jpg"].sha256
    assert {Path(path).suffix for path in rows} >= {".jpg", ".JPG", ".jpeg"}


def test_the_fifth_dataset_also_has_a_synthetic_stand_in(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "project",
        {"datasets": ["brain_mri"], "fetch": {"synthetic": {"images_per_class": 10, "image_size": 32}}},
        datasets={"brain_mri": BRAIN_MRI},
    )
    run_in(project, "dvc", "repro")
    rows = manifest.read_interim(project / "data" / "interim" / "brain_mri")
    assert {row.label for row in rows} == {"yes", "no"}
    assert any(" " in row.path for row in rows)
    assert {Path(row.path).suffix for row in rows} == {".jpg", ".JPG", ".jpeg"}
    assert all(not row.member.startswith("brain_tumor_dataset/") for row in rows)
