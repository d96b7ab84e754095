"""`add` on real images in the layouts of archives it was not built for: each comes out right or is refused in one
line (the real images come from the shared sample folder, harness.project.REALDATA; skipped where it is absent).

ODIR-5K (rows naming two eyes), ISIC 2019 (lesions in a second table), RSNA Mammography (flag columns that are
attributes), NIH ChestX-ray14 (a box table beside the label table), CheXpert (path ids, uncertain codes), RSNA
Pneumonia (DICOM), Brain Tumor Classification (the archive's own Training/Testing split), blood cells' labels.csv
(labels joined by commas), and a table whose `Patient Age` is no patient.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from harness.project import REALDATA, make_project, run_in, update_yaml
from medimage import manifest
from medimage.adding import propose
from medimage.archives.inspection import list_archive
from medimage.archives.reading import Limits
from medimage.archives.unpacking import restructure
from medimage.errors import PipelineError
from medimage.settings.project import DatasetSpec
from medimage.settings.restructure import RestructureSettings
from tests.tables import BRAIN, COVID, csv_bytes, write

pytestmark = pytest.mark.skipif(not REALDATA.is_dir(), reason=f"real sample images not found at {REALDATA}")
SETTINGS = RestructureSettings()
ORIGIN = {"kaggle": None, "archive": "archive.zip", "fetch": "path"}


def real_images() -> list[tuple[str, bytes]]:
    """(label, bytes) of the real brain MRIs, yes and no taken in turn."""
    yes, no = (sorted((BRAIN / label).iterdir()) for label in ("yes", "no"))
    pairs = zip(yes, no, strict=False)
    return [(label, image.read_bytes()) for pair in pairs for label, image in zip(("yes", "no"), pair, strict=True)]


def proposed(archive: Path, **options: str) -> DatasetSpec:
    from medimage.adding import render

    proposal = propose("added", list_archive(archive, Limits.from_settings(SETTINGS)), ORIGIN, **options)
    return DatasetSpec.model_validate({"name": "added", **yaml.safe_load(render(proposal, "test"))})


def refusal(archive: Path, **options: str) -> str:
    with pytest.raises(PipelineError) as refused:
        proposed(archive, **options)
    message = str(refused.value)
    assert "\n" not in message
    return message


def odir_archive(path: Path, table: str, joined_keywords: int = 0, own_columns: bool = True) -> Path:
    """ODIR-5K: two eyes a row, each eye's keywords in its own column, the patient's flags N, D one-hot per row;
    the first `joined_keywords` left eyes carry two keywords joined by the full-width comma."""
    images = real_images()[:20]
    members, rows = {}, []
    for patient in range(10):
        left, right = images[2 * patient], images[2 * patient + 1]
        members[f"ODIR-5K/Training Images/{patient}_left.jpg"] = left[1]
        members[f"ODIR-5K/Training Images/{patient}_right.jpg"] = right[1]
        flags = ["1" if left[0] == "no" and right[0] == "no" else "0", "1" if "yes" in (left[0], right[0]) else "0"]
        keywords = [("normal fundus", "tumour")[eye[0] == "yes"] for eye in (left, right)]
        if patient < joined_keywords:
            keywords[0] += "\uff0claser spot"
        rows.append([patient, 50 + patient % 3, "Female", f"{patient}_left.jpg", f"{patient}_right.jpg", *keywords])
        rows[-1] += flags
    header = ["ID", "Patient Age", "Patient Sex", "Left-Fundus", "Right-Fundus"]
    header += ["Left-Diagnostic Keywords", "Right-Diagnostic Keywords", "N", "D"]
    if not own_columns:
        header[5:7] = ["Diagnostic Keywords A", "Diagnostic Keywords B"]
    data = csv_bytes(header, rows) if table.endswith(".csv") else workbook_bytes(header, rows)
    return write(path, members | {f"ODIR-5K/{table}": data})


@pytest.mark.parametrize("table", ["data.xlsx", "data.csv"])
def test_odir_each_eye_takes_its_own_keywords_and_both_eyes_their_patient(tmp_path: Path, table: str) -> None:
    archive = odir_archive(tmp_path / "odir.zip", table)
    entry = proposed(archive)
    assert entry.labels is not None and entry.labels.group_column == "ID"
    assert entry.labels.per_image == {
        "Left-Fundus": "Left-Diagnostic Keywords",
        "Right-Fundus": "Right-Diagnostic Keywords",
    }
    assert entry.labels.metadata == ["Patient Age", "Patient Sex"]
    restructure(archive, entry, SETTINGS, tmp_path / "interim")
    rows = {row.member.rsplit("/", 1)[1]: row for row in manifest.read_interim(tmp_path / "interim")}
    images = real_images()[:20]
    assert len(rows) == 20  # both eyes of every patient: none dropped
    for patient in range(10):
        for eye, (label, _) in zip(("left", "right"), images[2 * patient : 2 * patient + 2], strict=True):
            row = rows[f"{patient}_{eye}.jpg"]
            assert (row.label, row.group) == (("normal fundus", "tumour")[label == "yes"], str(patient))


def test_odir_eyes_with_several_keywords_are_multi_label_and_eyes_without_a_column_of_their_own_refused(
    tmp_path: Path,
) -> None:
    archive = odir_archive(tmp_path / "joined.zip", "data.csv", joined_keywords=3)
    entry = proposed(archive)
    assert entry.labels is not None and entry.labels.multi_label is not None
    assert (entry.labels.multi_label.separator, entry.labels.multi_label.none) == ("\uff0c", ["normal fundus"])
    assert entry.labels.names == {"laser spot": "D", "tumour": "D"}  # keyword -> the patient's class it goes with
    restructure(archive, entry, SETTINGS, tmp_path / "interim")
    rows = {row.member.rsplit("/", 1)[1]: row for row in manifest.read_interim(tmp_path / "interim")}
    images = real_images()[:20]
    assert {name: (row.targets, row.group) for name, row in rows.items()} == {
        f"{number // 2}_{('left', 'right')[number % 2]}.jpg": ((("D", int(label == "yes")),), str(number // 2))
        for number, (label, _) in enumerate(images)
    }
    message = refusal(odir_archive(tmp_path / "shared.zip", "data.csv", own_columns=False))
    assert (
        "each row names 2 images (columns Left-Fundus, Right-Fundus) and not every image has a label column" in message
    )


def workbook_bytes(header: list[str], rows: list[list[object]]) -> bytes:
    import io

    import openpyxl

    workbook = openpyxl.Workbook()
    for row in [header, *rows]:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_a_group_column_is_chosen_for_what_it_holds_never_for_part_of_its_name(tmp_path: Path) -> None:
    members, rows = {}, []
    for number, (label, data) in enumerate(real_images()[:40]):
        members[f"images/img_{number:03d}.jpg"] = data
        rows.append([f"img_{number:03d}", label, 30 + number % 4, ("M", "F")[number % 2], f"P{number // 3:03d}"])
    header = ["image", "label", "Patient Age", "Patient Sex", "Patient ID"]
    members["labels.csv"] = csv_bytes(header, rows)
    entry = proposed(write(tmp_path / "with-id.zip", members))
    assert entry.labels is not None and entry.labels.group_column == "Patient ID"
    assert entry.labels.metadata == ["Patient Age", "Patient Sex"]
    members["labels.csv"] = csv_bytes(header[:4], [row[:4] for row in rows])
    entry = proposed(write(tmp_path / "no-id.zip", members))
    assert entry.labels is not None and entry.labels.group_column is None  # an age is not a patient


def isic_archive(path: Path, several: int = 0) -> tuple[Path, dict[str, str]]:
    """ISIC 2019's two tables over the real COVID radiographs: one-hot ground truth, lesion_id in the metadata
    (two images a lesion, some empty); `several` rows set two columns."""
    members, truth, metadata, lesions = {}, [], [], {}
    images = [(label, image) for label in ("COVID", "Normal") for image in sorted((COVID / label).glob("*.png"))]
    for number, (label, image) in enumerate(images):
        name = f"ISIC_{number:07d}"
        members[f"ISIC_2019_Training_Input/{name}.png"] = image.read_bytes()
        flags = [f"{float(label == 'COVID'):.1f}", f"{float(label == 'Normal' or number < several):.1f}", "0.0"]
        truth.append([name, *flags])
        lesion = "" if number % 7 == 0 else f"IL_{number // 2:07d}"
        metadata.append([name, 50, "torso", lesion, "female"])
        if lesion:
            lesions[name] = lesion
    members["ISIC_2019_Training_GroundTruth.csv"] = csv_bytes(["image", "COVID", "NORMAL", "UNK"], truth)
    header = ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"]
    members["ISIC_2019_Training_Metadata.csv"] = csv_bytes(header, metadata)
    return write(path, members), lesions


def test_isic_lesions_come_from_the_second_table_and_stay_whole(tmp_path: Path) -> None:
    archive, lesions = isic_archive(tmp_path / "isic.zip")
    entry = proposed(archive)
    assert entry.labels is not None and entry.labels.group_column == "lesion_id"
    assert entry.labels.join is not None and entry.labels.join.table == "ISIC_2019_Training_Metadata.csv"
    assert entry.labels.metadata == ["age_approx", "anatom_site_general", "sex"]
    restructure(archive, entry, SETTINGS, tmp_path / "interim")
    groups = {Path(row.path).stem: row.group for row in manifest.read_interim(tmp_path / "interim")}
    assert {image: group for image, group in groups.items() if group} == lesions


def test_one_hot_rows_that_set_several_columns_are_refused_with_their_count(tmp_path: Path) -> None:
    archive, _ = isic_archive(tmp_path / "isic.zip", several=3)
    assert "columns COVID, NORMAL give several labels to 3 of the 40 labelled rows read: too few" in refusal(archive)
    forced = proposed(archive, multi_label=True)
    assert forced.labels is not None and forced.labels.multi_label is not None
    entry = proposed(isic_archive(tmp_path / "clean.zip")[0])
    with pytest.raises(PipelineError, match="give several labels to 3 images"):
        restructure(archive, entry, SETTINGS, tmp_path / "interim")


def test_flag_columns_that_most_rows_leave_unset_are_attributes_not_labels(tmp_path: Path) -> None:
    """RSNA Mammography's train.csv: cancer, biopsy, invasive, implant are flags, site_id 1/2; test.csv no label."""
    members, rows = {}, []
    for number, (_, data) in enumerate(real_images()[:48]):
        members[f"train_images/{number // 4}/{1000 + number}.jpg"] = data
        cancer = "1" if number % 12 == 0 else "0"
        rows.append([1 + number % 2, number // 4, 1000 + number, "L", "CC", 60, cancer, cancer, cancer, "0", "0"])
    header = ["site_id", "patient_id", "image_id", "laterality", "view", "age", "cancer", "biopsy", "invasive"]
    members["train.csv"] = csv_bytes([*header, "implant", "difficult_negative_case"], rows)
    members["test.csv"] = csv_bytes(["site_id", "patient_id", "image_id"], [row[:3] for row in rows[:5]])
    archive = write(tmp_path / "mammo.zip", members)
    message = refusal(archive)
    assert "--label-column" in message and "cancer" in message
    entry = proposed(archive, label_column="cancer")
    assert entry.labels is not None and entry.labels.group_column == "patient_id"


def nih_archive(path: Path, multi: bool, images: int = 30) -> Path:
    members, rows, boxes = {}, [], []
    for number, (label, data) in enumerate(real_images()[:images]):
        name = f"{number // 3:08d}_{number % 3:03d}.png"
        members[f"images_001/images/{name}"] = data  # JPEG bytes behind .png: counted, still read
        finding = "Mass" if label == "yes" else "No Finding"
        if multi and number % 5 == 0:
            finding = "Mass|Effusion"
        rows.append([name, finding, number % 3, number // 3, 40 + number % 30, "M", "PA"])
        if label == "yes":
            boxes += [[name, "Mass", 10, 20, 30, 40], [name, "Mass", 50, 60, 30, 40]]
    header = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender"]
    members["Data_Entry_2017.csv"] = csv_bytes([*header, "View Position"], rows)
    members["BBox_List_2017.csv"] = csv_bytes(["Image Index", "Finding Label", "Bbox [x", "y", "w", "h]"], boxes)
    names = [row[0] for row in rows]
    members["train_val_list.txt"] = "\n".join(name for name in names if int(name[:8]) % 4).encode()
    members["test_list.txt"] = "\n".join(name for name in names if int(name[:8]) % 4 == 0).encode()
    return write(path, members)


def test_nih_box_table_is_set_aside_and_joined_findings_are_multi_label(tmp_path: Path) -> None:
    entry = proposed(nih_archive(tmp_path / "nih.zip", multi=False))
    assert entry.labels is not None and entry.labels.table == "Data_Entry_2017.csv"
    assert entry.labels.group_column == "Patient ID" and entry.labels.multi_label is None
    archive = nih_archive(tmp_path / "multi.zip", multi=True)
    entry = proposed(archive)
    assert entry.labels is not None and entry.labels.multi_label is not None
    assert (entry.labels.multi_label.separator, entry.labels.multi_label.none) == ("|", ["No Finding"])
    restructure(archive, entry, SETTINGS, tmp_path / "interim")
    rows = {row.member.rsplit("/", 1)[1]: row for row in manifest.read_interim(tmp_path / "interim")}
    expected = {}
    for number, (label, _) in enumerate(real_images()[:30]):
        several = number % 5 == 0
        mass = int(label == "yes" or several)
        expected[f"{number // 3:08d}_{number % 3:03d}.png"] = (("Effusion", int(several)), ("Mass", mass))
    assert {name: row.targets for name, row in rows.items()} == expected
    assert {row.source_split for name, row in rows.items() if int(name[:8]) % 4 == 0} == {"test"}


def test_chexpert_path_ids_match_by_path_and_its_codes_are_multi_label_with_a_policy_for_uncertain(
    tmp_path: Path,
) -> None:
    members, rows, valid = {}, [], []
    for number, (label, data) in enumerate(real_images()[:32]):
        split = "valid" if number >= 24 else "train"
        path = f"CheXpert-v1.0-small/{split}/patient{number // 2:05d}/study1/view{1 + number % 2}_frontal.jpg"
        members[path] = data
        (valid if split == "valid" else rows).append([path, "Female", 60, "Frontal", "AP", label])
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "diagnosis"]
    members["CheXpert-v1.0-small/train.csv"] = csv_bytes(header, rows)
    members["CheXpert-v1.0-small/valid.csv"] = csv_bytes(header, valid)
    archive = write(tmp_path / "chexpert.zip", members)
    entry = proposed(archive)
    assert entry.labels is not None and entry.labels.more_tables == ["CheXpert-v1.0-small/valid.csv"]
    restructure(archive, entry, SETTINGS, tmp_path / "interim")
    found = manifest.read_interim(tmp_path / "interim")
    assert {row.member: row.label for row in found} == {row[0]: row[5] for row in rows + valid}  # none collide
    assert {row.member.split("/")[1]: row.source_split for row in found} == {"train": "train", "valid": "val"}
    coded = [  # No Finding set where no finding is (Support Devices is not one)
        [row[0], *row[1:5], "1.0" if row[5] != "yes" and n % 4 == 1 else ""]
        + ["1.0" if row[5] == "yes" else "", "-1.0" if n % 4 else "0.0", "1.0"]
        for n, row in enumerate(rows)
    ]
    members["CheXpert-v1.0-small/train.csv"] = csv_bytes(
        [*header[:5], "No Finding", "Lung Lesion", "Edema", "Support Devices"], coded
    )
    del members["CheXpert-v1.0-small/valid.csv"]  # its 8 images unlabelled: each its own path, none collide
    archive = write(tmp_path / "coded.zip", members)
    entry = proposed(archive)
    assert entry.labels is not None and entry.labels.multi_label is not None
    assert entry.labels.multi_label.model_dump() == {
        "separator": "|",
        "none": ["No Finding"],  # the absence of every label, never one
        "uncertain": "ignore",
        "blank": "negative",
    }
    assert entry.group_regex == "patient(\\d+)_"
    for uncertain, edema in (("ignore", None), ("positive", 1), ("negative", 0)):
        policy = entry.labels.multi_label.model_copy(update={"uncertain": uncertain})
        chosen = entry.model_copy(update={"labels": entry.labels.model_copy(update={"multi_label": policy})})
        restructure(archive, chosen, SETTINGS, tmp_path / uncertain)
        found = {row.member: row for row in manifest.read_interim(tmp_path / uncertain)}
        assert {member: row.targets for member, row in found.items()} == {
            row[0]: (("Edema", edema if n % 4 else 0), ("Lung Lesion", int(row[5] == "yes")), ("Support Devices", 1))
            for n, row in enumerate(rows)
        }
        assert {row.group for row in found.values()} == {f"{n:05d}" for n in range(12)}  # patient00000 ... 00011


def test_dicom_files_without_an_extension_are_refused_in_one_line(tmp_path: Path) -> None:
    dicom = bytes(128) + b"DICM" + bytes(64)
    bare = {f"images/{n}": dicom for n in range(3)}
    assert refusal(write(tmp_path / "bare.zip", bare)) == (
        "added: 3 DICOM files without an extension (e.g. images/0): a layout matches files by extension; rename them "
        "to .dcm"
    )


def test_blood_cell_labels_joined_by_commas_are_refused_not_a_new_class(tmp_path: Path) -> None:
    members, rows = {}, []
    for number, (label, data) in enumerate(real_images()[:20]):
        members[f"JPEGImages/BloodImage_{number:05d}.jpg"] = data
        rows.append([number, f"BloodImage_{number:05d}", ("NEUTROPHIL", "LYMPHOCYTE")[label == "yes"]])
    rows[3][2] = "NEUTROPHIL, LYMPHOCYTE"
    members["labels.csv"] = csv_bytes(["", "Image", "Category"], rows)
    message = refusal(write(tmp_path / "cells.zip", members))
    assert "label cells give several labels to 1 of the 20 labelled rows read: too few" in message


def test_add_says_what_happens_to_the_archives_own_split(tmp_path: Path) -> None:
    members = {}
    for number, (label, data) in enumerate(real_images()[:40]):
        split = "Testing" if number % 5 == 0 else "Training"
        members[f"{split}/{label}_tumor/image({number}).jpg"] = data
    archive = write(tmp_path / "sartaj.zip", members)
    project = make_project(tmp_path / "project", {"datasets": ["chest_xray"]})
    printed = run_in(project, sys.executable, "-m", "stages.add", "sartaj", str(archive)).stdout
    line = next(line for line in printed.splitlines() if line.startswith("the archive's own splits"))
    assert line.startswith("the archive's own splits: test (8 images), train (32 images): split.strategy pool")
    assert "honours them" in line and line in (project / "datasets" / "sartaj.yaml").read_text()


def pcam_archive(path: Path) -> tuple[Path, dict[str, str]]:
    """Histopathologic Cancer Detection's layout: train/<id>.tif (96x96 RGB), train_labels.csv (ids without the
    extension, label 0/1), test/<id>.tif unlabelled, sample_submission.csv; the real MRIs as the pixels."""
    members, rows, labels = {}, [], {}
    for number, (label, data) in enumerate(real_images()[:60]):
        image = cv2.resize(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), (96, 96))
        tiff = cv2.imencode(".tif", image)[1].tobytes()
        identifier = hashlib.sha1(f"{number}".encode()).hexdigest()
        if number % 10 == 9:
            members[f"test/{identifier}.tif"] = tiff
            continue
        members[f"train/{identifier}.tif"] = tiff
        rows.append([identifier, int(label == "yes")])
        labels[identifier] = str(int(label == "yes"))
    members["train_labels.csv"] = csv_bytes(["id", "label"], rows)
    members["sample_submission.csv"] = csv_bytes(["id", "label"], [[row[0], 0] for row in rows[:5]])
    return write(path, members), labels


def test_tiff_images_train_and_evaluate_with_both_loaders(tmp_path: Path) -> None:
    """PCam's .tif: restructure kept them, and then Keras' directory loader skipped them (TIFF is not among the
    files it lists, and TensorFlow cannot decode it): every image must reach training with either loader."""
    archive, labels = pcam_archive(tmp_path / "histopathologic-cancer-detection.zip")
    train = {"image_size": 32, "epochs": 2, "batch_size": 16}
    project = make_project(tmp_path / "project", {"datasets": ["chest_xray"], "train": train})
    run_in(project, sys.executable, "-m", "stages.add", "pcam", str(archive))
    for loader in ("keras", "opencv"):
        update_yaml(project / "params.yaml", {"train": {"loader": loader}})
        run_in(project, "dvc", "repro", "evaluate@pcam")
        rows = manifest.read_processed(project / "data" / "processed" / "pcam")
        assert {Path(row.path).stem: row.label for row in rows} == labels
        summary = json.loads((project / "models" / "pcam" / "train.json").read_text())
        assert summary["loader"] == loader
        with (project / "metrics" / "pcam" / "test_predictions.csv").open(newline="") as handle:
            tested = list(csv.DictReader(handle))
        assert len(tested) == sum(row.split == "test" for row in rows) > 0


def test_an_official_split_list_is_honoured_by_default_with_val_carved_out_of_train_by_patient(tmp_path: Path) -> None:
    archive = nih_archive(tmp_path / "nih.zip", multi=False, images=80)
    project = make_project(tmp_path / "project", {"datasets": ["chest_xray"]})
    printed = run_in(project, sys.executable, "-m", "stages.add", "nih", str(archive)).stdout
    assert "the archive's own splits: test (" in printed and "honoured (split: keep in this entry)" in printed
    run_in(project, "dvc", "repro", "split@nih")
    rows = manifest.read_processed(project / "data" / "processed" / "nih")
    official_test = {name for name in rows_named(archive, "test_list.txt")}
    assert {Path(row.path).name for row in rows if row.split == "test"} == official_test
    assert {row.split for row in rows} == {"train", "val", "test"}
    splits_of_patient: dict[str, set[str]] = {}
    for row in rows:
        splits_of_patient.setdefault(row.group, set()).add(row.split)
    assert all(len(splits) == 1 for splits in splits_of_patient.values())


def rows_named(archive: Path, member: str) -> list[str]:
    import zipfile

    with zipfile.ZipFile(archive) as handle:
        return handle.read(member).decode().split()
