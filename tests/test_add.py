"""`python -m stages.add`: an archive in, a registry entry with its evidence out, and the pipeline runs it.

The four stand-ins prove the folder-labelled path (the entry `add` writes restructures to the committed entry's
manifest); real images packed in HAM10000's, APTOS' and ISIC 2019's table-labelled layouts (tests/tables.py,
skipped where the real-image folder, harness.project.REALDATA, is absent) prove the table path under DVC.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pytest
import yaml

from harness.project import REALDATA, REGISTERED_DATASETS, ROOT, make_project, run_in
from medimage import manifest
from medimage.adding import propose, render
from medimage.archives import synthetic
from medimage.archives.inspection import Ambiguous, list_archive
from medimage.archives.reading import Limits
from medimage.archives.unpacking import restructure
from medimage.errors import PipelineError
from medimage.modelling.opencv_loader import ImageSet
from medimage.reporting.clinical import OperatingPoint, subgroup_value, subgroups
from medimage.settings.evaluate import EvaluateSettings
from medimage.settings.fetch import SyntheticSettings
from medimage.settings.project import DatasetSpec
from medimage.settings.restructure import RestructureSettings
from tests import tables
from tests.samples import TOY, jpeg_bytes, png_bytes, write_zip

SETTINGS = RestructureSettings()
LIMITS = Limits.from_settings(SETTINGS)
ORIGIN = {"kaggle": None, "archive": "archive.zip", "fetch": "path"}
needs_realdata = pytest.mark.skipif(not REALDATA.is_dir(), reason=f"real sample images not found at {REALDATA}")


def added_text(name: str, archive: Path, **options: str) -> str:
    """The YAML `add` writes for the archive."""
    return render(propose(name, list_archive(archive, LIMITS), ORIGIN, **options), "test")


def added_entry(name: str, archive: Path, **options: str) -> DatasetSpec:
    """What `add` writes for the archive, read back from its YAML."""
    return DatasetSpec.model_validate({"name": name, **yaml.safe_load(added_text(name, archive, **options))})


@pytest.mark.parametrize("name", REGISTERED_DATASETS)
def test_add_on_a_stand_in_restructures_to_the_committed_entrys_manifest(
    tmp_path: Path, registered: dict[str, DatasetSpec], name: str
) -> None:
    archive = tmp_path / f"{name}.zip"
    synthetic.write_archive(registered[name], SyntheticSettings(images_per_class=12, image_size=32), archive)
    text = added_text(name, archive)
    entry = DatasetSpec.model_validate({"name": name, **yaml.safe_load(text)})
    if "name them under labels.names" in text:  # numbers for labels: the one edit add asks for
        assert entry.labels is not None and registered[name].labels is not None and registered[name].labels.names
        named = entry.labels.model_copy(update={"names": registered[name].labels.names})
        entry = entry.model_copy(update={"labels": named})
    if registered[name].sources:  # left for the user to set, but named in the evidence
        assert f"set sources: {json.dumps(registered[name].sources)}" in text
    assert (entry.labels is None) == (registered[name].labels is None)
    restructure(archive, registered[name], SETTINGS, tmp_path / "committed")
    restructure(archive, entry, SETTINGS, tmp_path / "added")
    committed = (tmp_path / "committed" / "manifest.csv").read_bytes()
    assert committed.count(b"\n") > 20
    assert (tmp_path / "added" / "manifest.csv").read_bytes() == committed


def test_the_table_labelled_stand_in_runs_offline_at_scale_with_every_image_once_and_lesions_whole(
    tmp_path: Path, registered: dict[str, DatasetSpec]
) -> None:
    knobs = SyntheticSettings(images_per_class=300, image_size=32)
    project = make_project(tmp_path / "project", {"datasets": ["ham10000"], "fetch": {"synthetic": knobs.model_dump()}})
    run_in(project, "dvc", "repro", "split@ham10000")
    planned = synthetic.plan_images(registered["ham10000"].synthetic, knobs.images_per_class)
    assert len(planned) > 2000 and len({image.label for image in planned}) == 7
    rows = manifest.read_processed(project / "data" / "processed" / "ham10000")
    assert sorted((row.member, row.label, row.group) for row in rows) == sorted(
        (image.member, image.label, f"HAM_{image.patient:07d}") for image in planned
    )
    splits_of_lesion: dict[str, set[str]] = {}
    for row in rows:
        splits_of_lesion.setdefault(row.group, set()).add(row.split)
    assert max(len(splits) for splits in splits_of_lesion.values()) == 1
    assert {row.split for row in rows} == {"train", "val", "test"}
    report = json.loads((project / "metrics" / "ham10000" / "restructure_report.json").read_text())
    part_1 = sum(image.archive_split == "HAM10000_images_part_1" for image in planned)
    assert report["ignored_by_rule"] == {"ham10000_images_part_1/*": part_1}
    assert report["label_table"]["rows_without_label"] == report["label_table"]["rows_without_image"] == 0
    metadata = manifest.read_metadata(project / "data" / "interim" / "ham10000")  # labels.metadata: the subgroups
    assert len(metadata) == len(rows) and set(map(tuple, map(dict.items, metadata.values()))) == {
        (("sex", "male"), ("age", "50.0"), ("localization", "back"))
    }


def test_ambiguous_label_columns_stop_with_the_candidates_and_the_option_that_names_one(tmp_path: Path) -> None:
    archive = tmp_path / "ham.zip"
    members = {f"images/ISIC_{n:07d}.jpg": jpeg_bytes(value=n) for n in range(12)}
    rows = "\n".join(f"ISIC_{n:07d},L{n % 3},{'mf'[n % 2]},{('back', 'face')[n % 2]}" for n in range(12))
    members["metadata.csv"] = f"image_id,code,sex,localization\n{rows}\n".encode()
    write_zip(archive, members)
    with pytest.raises(Ambiguous, match=r"candidates: code \(3 values\); name the label column with --label-column"):
        added_entry("ham", archive)
    entry = added_entry("ham", archive, label_column="code")
    assert entry.labels is not None and entry.labels.label_column == "code"


def nih_archive(path: Path, findings: list[str]) -> Path:
    members = {f"images_001/images/{n:08d}_000.png": png_bytes(value=n * 9) for n in range(len(findings))}
    rows = "\n".join(f"{n:08d}_000.png,{finding},{n // 2}" for n, finding in enumerate(findings))
    members["Data_Entry_2017.csv"] = f"Image Index,Finding Labels,Patient ID\n{rows}\n".encode()
    members["train_val_list.txt"] = "\n".join(f"{n:08d}_000.png" for n in range(len(findings)) if n < 8).encode()
    members["test_list.txt"] = "\n".join(f"{n:08d}_000.png" for n in range(len(findings)) if n >= 8).encode()
    return write_zip(path, members)


def test_joined_findings_are_read_as_multi_label_with_no_finding_the_absence_of_every_label(tmp_path: Path) -> None:
    findings = ["No Finding", "Atelectasis|Effusion", "Effusion", "No Finding|Effusion"] * 3
    archive = nih_archive(tmp_path / "nih.zip", findings)
    entry = added_entry("nih", archive)
    assert entry.labels is not None and entry.labels.multi_label is not None
    assert (entry.labels.multi_label.separator, entry.labels.multi_label.none) == ("|", ["No Finding"])
    restructure(archive, entry, SETTINGS, tmp_path / "interim")
    rows = {row.member.rsplit("/", 1)[1]: row for row in manifest.read_interim(tmp_path / "interim")}
    expected = {
        f"{n:08d}_000.png": tuple((name, int(name in finding)) for name in ("Atelectasis", "Effusion"))
        for n, finding in enumerate(findings)
    }
    assert {name: row.targets for name, row in rows.items()} == expected
    assert {row.label for row in rows.values()} == {"", "Atelectasis|Effusion", "Effusion"}


def test_split_lists_and_a_patient_column_come_from_the_archive(tmp_path: Path) -> None:
    archive = nih_archive(tmp_path / "nih.zip", ["No Finding", "Effusion"] * 6)
    entry = added_entry("nih", archive)
    assert entry.labels is not None
    assert entry.labels.split_lists == {"test_list": "test_list.txt", "train_val_list": "train_val_list.txt"}
    assert entry.labels.group_column == "Patient ID"
    restructure(archive, entry, SETTINGS, tmp_path / "interim")
    rows = {row.path.rsplit("/", 1)[1]: row for row in manifest.read_interim(tmp_path / "interim")}
    assert {name: (row.source_split, row.label, row.group) for name, row in rows.items()} == {
        f"{n:08d}_000.png": ("train" if n < 8 else "test", ["No Finding", "Effusion"][n % 2], str(n // 2))
        for n in range(12)
    }


def table_entry(**labels: object) -> DatasetSpec:
    """The toy entry with labels from `labels.csv` (column `id`) for images in any folder."""
    table = {"table": "labels.csv", "id_column": "id", **labels}
    return DatasetSpec.model_validate({**TOY.model_dump(), "layout": ["**/{file}"], "labels": table})


def test_a_table_restructure_counts_copies_unlabelled_images_and_rows_without_images(tmp_path: Path) -> None:
    image = jpeg_bytes()
    members = {"a/one.jpg": image, "b/one.jpg": image, "a/two.jpg": jpeg_bytes(value=40), "a/three.jpg": image}
    members["labels.csv"] = b"id,dx\none,x\ntwo.jpg,y\nfour,x\n"
    metrics = restructure(
        write_zip(tmp_path / "t.zip", members), table_entry(label_column="dx"), SETTINGS, tmp_path / "i"
    )
    assert metrics["images"] == 2 and metrics["counts"] == {"all": {"x": 1, "y": 1}}
    assert metrics["skipped"]["duplicate_copy"] == 1 and metrics["duplicate_copy_examples"] == ["b/one.jpg"]
    assert metrics["skipped"]["unlabelled"] == 1 and metrics["unlabelled_examples"] == ["a/three.jpg"]
    assert metrics["label_table"]["rows_without_image_examples"] == ["four"]
    members["b/one.jpg"] = jpeg_bytes(value=7)
    with pytest.raises(PipelineError, match="differ but both are image 'one'"):
        restructure(write_zip(tmp_path / "u.zip", members), table_entry(label_column="dx"), SETTINGS, tmp_path / "j")


def test_a_table_cell_cannot_name_a_folder_outside_its_place(tmp_path: Path) -> None:
    members = {"a/one.jpg": jpeg_bytes(), "labels.csv": b"id,dx\none,../../escaped\n"}
    with pytest.raises(PipelineError, match=r"label '\.\./\.\./escaped' cannot name a folder"):
        restructure(write_zip(tmp_path / "t.zip", members), table_entry(label_column="dx"), SETTINGS, tmp_path / "i")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "i").exists()


def test_labels_from_a_workbook_with_readable_names(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in (["id", "diagnosis"], ["one", 0], ["two", 4]):
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    members = {"x/one.png": png_bytes(), "x/two.png": png_bytes(value=30), "labels.xlsx": buffer.getvalue()}
    entry = table_entry(label_column="diagnosis", names={0: "no_dr", 4: "proliferative"})
    entry = entry.model_copy(update={"labels": entry.labels.model_copy(update={"table": "labels.xlsx"})})
    restructure(write_zip(tmp_path / "t.zip", members), entry, SETTINGS, tmp_path / "i")
    labels = {row.path: row.label for row in manifest.read_interim(tmp_path / "i")}
    assert labels == {"all/no_dr/one.png": "no_dr", "all/proliferative/two.png": "proliferative"}


def test_add_registers_the_dataset_and_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    shutil.copy(ROOT / "params.yaml", project / "params.yaml")  # with its comments
    archive = write_zip(
        tmp_path / "toy.zip",
        {f"toy/{label}/{n}.jpg": jpeg_bytes(value=n + 10 * ord(label) % 200) for label in "ab" for n in range(4)},
    )
    run_in(project, sys.executable, "-m", "stages.add", "toy", str(archive))
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["datasets"][-1] == "toy" and params["fetch"]["paths"]["toy"] == str(archive.resolve())
    before, after = (ROOT / "params.yaml").read_text().splitlines(), (project / "params.yaml").read_text().splitlines()
    changed = [line for line in after if line not in before]
    assert len(changed) == 3 and changed[0].startswith("datasets: [") and changed[0].endswith(", toy]")
    assert changed[1].startswith("  paths: ") and changed[2] == f"    toy: {archive.resolve()}"
    comments = [line.split("#", 1)[1] for line in before if "#" in line]
    assert all(any(comment in line for line in after) for comment in comments)  # every comment kept
    artifacts = yaml.safe_load((project / "dvc.yaml").read_text())["artifacts"]
    assert artifacts["toy-classifier"]["path"] == "models/toy"
    written = (project / "datasets" / "toy.yaml").read_text()
    again = run_in(project, sys.executable, "-m", "stages.add", "toy", str(archive), check=False)
    assert again.returncode == 1 and again.stderr.strip().endswith(
        "datasets/toy.yaml exists; pass --force to replace it"
    )
    run_in(project, sys.executable, "-m", "stages.add", "toy", str(archive), "--force")
    rewritten = (project / "datasets" / "toy.yaml").read_text()
    assert rewritten.splitlines()[1:] == written.splitlines()[1:] and "--force" in rewritten.splitlines()[0]
    assert yaml.safe_load((project / "params.yaml").read_text())["datasets"].count("toy") == 1


@needs_realdata
def test_real_images_in_table_labelled_layouts_are_added_and_split_under_dvc(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", {"datasets": ["chest_xray"]})
    ham, ham_labels, lesions = tables.ham10000(tmp_path / "skin-cancer-mnist-ham10000.zip")
    aptos, aptos_labels, aptos_test = tables.aptos(tmp_path / "aptos2019-blindness-detection.zip")
    isic, isic_labels = tables.isic(tmp_path / "isic-2019.zip")
    for name, archive in (("ham", ham), ("aptos", aptos), ("isic", isic)):
        run_in(project, sys.executable, "-m", "stages.add", name, str(archive))
    run_in(project, "dvc", "repro", "split@ham", "split@aptos", "split@isic")

    def labels(name: str) -> dict[str, tuple[str, str]]:
        rows = manifest.read_processed(project / "data" / "processed" / name)
        keys = [Path(row.path).stem for row in rows]
        assert len(keys) == len(set(keys)), f"{name}: an image appears twice"
        return {Path(row.path).stem: (row.label, row.split) for row in rows}

    ham_split = labels("ham")
    assert {key: label for key, (label, _) in ham_split.items()} == ham_labels
    assert all(len({ham_split[image][1] for image in images}) == 1 for images in lesions.values())
    assert sum(len(images) > 1 for images in lesions.values()) > 50
    report = json.loads((project / "metrics" / "ham" / "restructure_report.json").read_text())
    with zipfile.ZipFile(ham) as handle:
        copies = sum(name.startswith("ham10000_images_part_1/") for name in handle.namelist())
    assert copies > 100 and report["ignored_by_rule"] == {"ham10000_images_part_1/*": copies}
    headline = json.loads((project / "metrics" / "ham" / "restructure.json").read_text())
    assert headline["skipped"]["unlabelled"] > 0 and report["label_table"]["rows_without_image"] > 0
    assert {key: label for key, (label, _) in labels("aptos").items()} == aptos_labels
    assert not aptos_test & set(labels("aptos"))
    assert {key: label for key, (label, _) in labels("isic").items()} == isic_labels
    entry = (project / "datasets" / "ham.yaml").read_text()
    assert "table hmnist_8_8_L.csv not used: no column names the images" in entry
    aptos_entry = (project / "datasets" / "aptos.yaml").read_text()
    assert "sample_submission.csv not used" in aptos_entry and "the labels are numbers" in aptos_entry
    assert "the labels are numbers" not in entry


def test_metadata_columns_of_a_label_table_are_proposed_carried_and_become_subgroups(tmp_path: Path) -> None:
    """sex and age in the table: `add` proposes them, restructure writes them beside the manifest, and evaluate's
    subgroups come out per sex and per age band, each with its images and interval."""
    archive = tmp_path / "derm.zip"
    count = 40
    members = {f"images/ISIC_{n:07d}.jpg": jpeg_bytes(value=n) for n in range(count)}
    rows = "\n".join(f"ISIC_{n:07d},{'ab'[n % 2]},{'mf'[n // 20]},{30 + n // 2}.0,HAM_{n}" for n in range(count))
    members["metadata.csv"] = f"image_id,dx,sex,age,lesion_id\n{rows}\n".encode()
    write_zip(archive, members)
    entry = added_entry("derm", archive)
    assert entry.labels is not None and entry.labels.metadata == ["sex", "age"]
    restructure(archive, entry, RestructureSettings(), tmp_path / "interim")
    interim_rows = manifest.read_interim(tmp_path / "interim")
    metadata = manifest.read_metadata(tmp_path / "interim")
    assert set(metadata) == {row.path for row in interim_rows}
    first = next(row for row in interim_rows if row.path.endswith("ISIC_0000003.jpg"))
    assert metadata[first.path] == {"sex": "m", "age": "31.0"}

    names = ["a", "b"]
    labels = np.array([names.index(row.label) for row in interim_rows])
    probabilities = np.stack([1 - labels * 0.8 - 0.1, labels * 0.8 + 0.1], axis=1)
    images = ImageSet([Path(row.path) for row in interim_rows], labels, [(8, 8)] * count, names, [""] * count)
    attributes = {
        column: [subgroup_value(column, metadata[row.path][column]) for row in interim_rows]
        for column in ("sex", "age")
    }
    point = OperatingPoint(0.5, "0.5")
    found = subgroups(images, probabilities, point, attributes, EvaluateSettings(bootstrap_resamples=100))
    assert [(entry["value"], entry["images"]) for entry in found["sex"]] == [("f", 20), ("m", 20)]
    assert [entry["value"] for entry in found["age"]] == ["30-39", "40-49"]
    assert all(entry["accuracy"] == 1.0 and entry["accuracy_ci"] == [1.0, 1.0] for entry in found["sex"])
