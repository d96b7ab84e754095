"""DICOM archives: every transfer syntax the Kaggle sets use, the display pipeline (modality LUT, window, MONOCHROME1),
bad files counted, identifying tags never in an output, a folder-labelled DICOM set and the RSNA Pneumonia stand-in
through `dvc repro`."""

from __future__ import annotations

import csv
import io
import json
import sys
import uuid
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
import yaml

from harness.project import REALDATA, make_project, run_in
from medimage import manifest
from medimage.adding import propose, render
from medimage.archives import dicom
from medimage.archives.inspection import list_archive
from medimage.archives.reading import Limits
from medimage.archives.unpacking import restructure
from medimage.archives.validation import InvalidImage
from medimage.errors import PipelineError
from medimage.settings.project import DatasetSpec
from medimage.settings.restructure import DicomSettings, RestructureSettings
from tests.dicoms import IDENTIFYING, LOSSLESS, LOSSY, Spec, dicom_bytes, stored_values
from tests.samples import TOY, write_zip
from tests.tables import csv_bytes

NONE = DicomSettings(window="none")


def chest(seed: int, size: tuple[int, int] = (96, 80)) -> np.ndarray:
    """A smooth grey picture with structure (lossy codecs are judged on it as on an X-ray)."""
    rng = np.random.default_rng(seed)
    image = np.zeros(size, np.uint8)
    for _ in range(6):
        centre = (int(rng.integers(0, size[1])), int(rng.integers(0, size[0])))
        cv2.circle(image, centre, int(rng.integers(5, 30)), int(rng.integers(60, 255)), -1)
    return cv2.GaussianBlur(image, (9, 9), 3)


def shown(data: bytes, settings: DicomSettings = NONE) -> np.ndarray:
    converted = dicom.convert(data, settings)
    return cv2.imdecode(np.frombuffer(converted.png, np.uint8), cv2.IMREAD_UNCHANGED)


def min_max(values: np.ndarray, inverted: bool) -> np.ndarray:
    """What window `none` shows: the stored values from their minimum to their maximum, bone bright."""
    values = values.astype(np.float64)
    scaled = (values - values.min()) / (values.max() - values.min())
    return np.rint((1 - scaled if inverted else scaled) * 255).astype(np.uint8)


CASES = [
    (syntax, bits, inverted)
    for syntax in [*LOSSLESS, *LOSSY]
    for bits in (8, 12, 16)
    for inverted in (False, True)
    if not (syntax == "jpeg_baseline" and bits != 8) and not (syntax == "jpeg_extended" and bits == 16)
]


@pytest.mark.parametrize(("syntax", "bits", "inverted"), CASES)
def test_every_transfer_syntax_decodes_to_the_image_a_viewer_shows(syntax: str, bits: int, inverted: bool) -> None:
    grey = chest(bits)
    spec = Spec(syntax=syntax, bits=bits, monochrome1=inverted)
    found = shown(dicom_bytes(grey, spec))
    expected = min_max(stored_values(grey, spec), inverted)
    if syntax in LOSSLESS:
        np.testing.assert_array_equal(found, expected)  # exactly, after the same window
    else:
        assert np.corrcoef(found.ravel(), expected.ravel())[0, 1] > 0.95, syntax
    assert found.mean() == pytest.approx(min_max(grey, False).mean(), abs=12)  # never inverted: bone stays bright


def test_rescale_then_the_files_window_then_monochrome1_in_that_order() -> None:
    grey = chest(3)
    spec = Spec(bits=12, rescale=(2.0, -1024.0), window=(1500.0, 2000.0), monochrome1=True)
    data = dicom_bytes(grey, spec)
    stored = stored_values(grey, spec).astype(np.float64)
    values = stored * 2.0 - 1024.0  # the modality LUT first
    window = np.clip((values - (1500 - 0.5)) / (2000 - 1) + 0.5, 0, 1)
    np.testing.assert_array_equal(shown(data, DicomSettings()), np.rint((1 - window) * 255).astype(np.uint8))
    made = dict(dicom.convert(data, DicomSettings()).made)
    assert made["window"] == "file linear center 1500 width 2000; MONOCHROME1 inverted"
    assert (made["photometric"], made["bits_stored"], made["rows"], made["columns"]) == (
        "MONOCHROME1",
        "12",
        "96",
        "80",
    )
    sigmoid = dicom_bytes(grey, Spec(bits=12, window=(2048.0, 1000.0), function="SIGMOID"))
    values = stored_values(grey, Spec(bits=12)).astype(np.float64)
    expected = np.rint(255 / (1 + np.exp(-4 * (values - 2048) / 1000))).astype(np.uint8)
    np.testing.assert_array_equal(shown(sigmoid, DicomSettings()), expected)
    no_window = dicom_bytes(grey, Spec(bits=12))
    assert dict(dicom.convert(no_window, DicomSettings()).made)["window"].startswith("percentile 0.5-99.5")


def test_a_voi_lut_sequence_is_applied_in_place_of_a_window() -> None:
    from pydicom.sequence import Sequence

    grey = chest(2)
    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes(grey, Spec(bits=12, window=(100.0, 10.0)))))
    table = np.clip((np.arange(4096) - 500) / 3000 * 65535, 0, 65535).astype(np.uint16)
    lut = pydicom.Dataset()
    lut.LUTDescriptor, lut.LUTData = [4096, 0, 16], table.tobytes()
    lut["LUTData"].VR = "OW"
    dataset.VOILUTSequence = Sequence([lut])
    expected = np.rint(table[stored_values(grey, Spec(bits=12)).astype(int)] / 65535 * 255).astype(np.uint8)
    np.testing.assert_array_equal(shown(_saved(dataset), DicomSettings()), expected)  # the LUT, not the window
    assert dict(dicom.convert(_saved(dataset), DicomSettings()).made)["window"] == "file VOI LUT"


def test_sixteen_bit_output_keeps_twelve_bits_of_grey_and_signed_pixels_are_read_signed() -> None:
    grey = chest(5)
    wide = shown(dicom_bytes(grey, Spec(bits=12)), DicomSettings(window="none", bits=16))
    assert wide.dtype == np.uint16 and len(np.unique(wide)) > 256 // 2
    signed = dicom_bytes(grey, Spec(bits=16, signed=True))
    np.testing.assert_array_equal(shown(signed), min_max(stored_values(grey, Spec(bits=16, signed=True)), False))
    jpeg_signed = dicom_bytes(grey, Spec(syntax="jpeg_lossless", bits=16, signed=True))
    np.testing.assert_array_equal(shown(jpeg_signed), shown(signed))


def bad_files() -> dict[str, tuple[bytes, str]]:
    """Member name -> (bytes, the reason restructure gives)."""
    good = dicom_bytes(chest(1), Spec(bits=12))
    header = pydicom.dcmread(io.BytesIO(good))
    files: dict[str, tuple[bytes, str]] = {"truncated.dcm": (good[: len(good) - 3000], "corrupt")}
    report = pydicom.dcmread(io.BytesIO(good))
    del report.PixelData
    report.Modality = "SR"
    files["report.dcm"] = (_saved(report), "not_image")
    huge = pydicom.dcmread(io.BytesIO(good))
    huge.Rows = huge.Columns = 60000
    files["huge.dcm"] = (_saved(huge), "unsupported")
    unknown = pydicom.dcmread(io.BytesIO(good))
    unknown.file_meta.TransferSyntaxUID = pydicom.uid.UID("1.2.840.10008.1.2.4.100")  # MPEG2: no decoder
    unknown.PixelData = pydicom.encaps.encapsulate([b"\x00" * 64])
    files["mpeg.dcm"] = (_saved(unknown), "unsupported")
    frames = pydicom.dcmread(io.BytesIO(good))
    frames.NumberOfFrames = 2
    frames.PixelData = header.PixelData * 2
    files["cine.dcm"] = (_saved(frames), "unsupported")
    files["garbage.dcm"] = (b"\x00" * 128 + b"DICM" + b"\xff" * 40, "corrupt")
    return files


def _saved(dataset: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dicom_entry(**changes: object) -> DatasetSpec:
    return DatasetSpec.model_validate({**TOY.model_dump(), "extensions": [".dcm"], **changes})


def test_bad_dicom_files_are_counted_by_reason_and_the_good_ones_kept(tmp_path: Path) -> None:
    members = {f"root/train/a/{name}": data for name, (data, _) in bad_files().items()}
    members |= {f"root/train/{label}/ok{n}.dcm": dicom_bytes(chest(n), Spec()) for n in range(3) for label in "ab"}
    archive = write_zip(tmp_path / "bad.zip", members)
    metrics = restructure(archive, dicom_entry(), RestructureSettings(), tmp_path / "out")
    assert metrics["images"] == 6
    reasons = {why: 0 for why in ("corrupt", "not_image", "unsupported")}
    for _, why in bad_files().values():
        reasons[why] += 1
    assert {why: metrics["skipped"][why] for why in reasons} == reasons
    skipped = (tmp_path / "out" / "skipped.csv").read_text()
    for name, (_, why) in bad_files().items():
        assert f"root/train/a/{name},{why}," in skipped, name
    assert "60000 x 60000 pixels, over the" in skipped and "2 frames" in skipped
    with pytest.raises(PipelineError, match=r"is (corrupt|not_image|unsupported) \(") as failed:
        restructure(archive, dicom_entry(), RestructureSettings(on_corrupt="fail"), tmp_path / "failed")
    assert "\n" not in str(failed.value) and not (tmp_path / "failed").exists()
    frames = bad_files()["cine.dcm"][0]
    assert shown(frames, DicomSettings(window="none", frames="first")).shape == (96, 80)
    with pytest.raises(InvalidImage, match="2 frames"):
        dicom.convert(frames, NONE)


def test_no_identifying_tag_reaches_any_output_and_patients_group_by_a_hash(tmp_path: Path) -> None:
    members = {}
    for n in range(12):
        tags = {**IDENTIFYING, "PatientID": f"MRN-{n // 3:04d}-Doe", "PatientSex": "MF"[n % 2], "ViewPosition": "PA"}
        members[f"root/train/{'ab'[n % 2]}/{n}.dcm"] = dicom_bytes(chest(n), Spec(bits=12, tags=tags))
    archive = write_zip(tmp_path / "tagged.zip", members)
    restructure(archive, dicom_entry(), RestructureSettings(), tmp_path / "out")
    written = b"".join(path.read_bytes() for path in (tmp_path / "out").rglob("*") if path.is_file())
    for value in [*IDENTIFYING.values(), "MRN-0001", "Doe"]:
        for piece in {value, *value.split("^")}:
            assert piece.encode() not in written, piece
    rows = manifest.read_interim(tmp_path / "out")
    assert all(row.path.endswith(".png") and row.format == "PNG" for row in rows)
    groups = {row.member: row.group for row in rows}
    assert len(set(groups.values())) == 4 and all(len(group) == 16 for group in groups.values())
    assert groups["root/train/a/0.dcm"] == groups["root/train/a/2.dcm"]  # one patient, one group
    made = dict(rows[0].made)
    assert made["transfer_syntax"] == "Explicit VR Little Endian" and made["bits_stored"] == "12"
    metadata = (tmp_path / "out" / "metadata.csv").read_text().splitlines()
    assert metadata[0] == "path,PatientSex,ViewPosition" and len(metadata) == 13


def test_a_folder_labelled_dicom_set_trains_and_evaluates_under_dvc(tmp_path: Path) -> None:
    members = {}
    for n in range(48):
        label = "ab"[n % 2]
        grey = chest(n)
        if label == "b":
            cv2.rectangle(grey, (10, 10), (40, 40), 255, -1)  # something to learn
        syntax = ["explicit", "rle", "jpeg_ls", "jpeg2000_lossless", "jpeg_lossless", "jpeg_baseline"][n % 6]
        bits, patient = 8 if syntax == "jpeg_baseline" else 12, {"PatientID": f"P{n // 2:03d}"}
        spec = Spec(syntax=syntax, bits=bits, monochrome1=n % 4 == 1, tags=patient)
        members[f"dicoms/{label}/{n:03d}.dcm"] = dicom_bytes(grey, spec)
    archive = write_zip(tmp_path / "dicoms.zip", members)
    entry = {**{k: v for k, v in TOY.model_dump().items() if k != "name"}, "layout": ["dicoms/{label}/{file}"]}
    entry |= {"extensions": [".dcm"], "split": {"strategy": "pool"}, "archive": "dicoms.zip"}
    project = make_project(
        tmp_path / "project",
        {
            "datasets": ["dicoms"],
            "fetch": {"source": "path", "paths": {"dicoms": str(archive)}},
            "train": {"model": "sklearn_linear", "loader": "opencv", "image_size": 32},
            "evaluate": {"bootstrap_resamples": 100},
        },
        datasets={"dicoms": entry},
    )
    run_in(project, "dvc", "repro", "evaluate@dicoms")
    rows = manifest.read_processed(project / "data" / "processed" / "dicoms")
    assert len(rows) == 48 and {dict(row.made)["transfer_syntax"] for row in rows} >= {
        "RLE Lossless",
        "JPEG-LS Lossless Image Compression",
    }
    headline = json.loads((project / "metrics" / "dicoms" / "eval.json").read_text())
    assert headline["roc_auc"] is not None and headline["roc_auc"] > 0.8
    # predict reads a .dcm as restructure did: the same probabilities as for the PNG it became
    interim = {row.member: row.path for row in manifest.read_interim(project / "data" / "interim" / "dicoms")}
    originals = []
    for member in ("dicoms/a/000.dcm", "dicoms/b/005.dcm"):
        (tmp_path / member).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / member).write_bytes(members[member])
        originals.append(str(tmp_path / member))
    pngs = [
        str(project / "data" / "interim" / "dicoms" / interim[member])
        for member in ("dicoms/a/000.dcm", "dicoms/b/005.dcm")
    ]
    lines = [
        [
            json.loads(line)["probabilities"]
            for line in run_in(project, sys.executable, "-m", "stages.predict", "dicoms", *files).stdout.splitlines()
        ]
        for files in (originals, pngs)
    ]
    assert lines[0] == lines[1] and len(lines[0]) == 2


@pytest.mark.skipif(not REALDATA.is_dir(), reason=f"real sample images not found at {REALDATA}")
@pytest.mark.parametrize("syntax", sorted(LOSSY))
def test_real_radiographs_survive_lossy_syntaxes(syntax: str) -> None:
    sources = sorted((REALDATA / "covid19-radiography-DERIVATIVE-resized224").rglob("*.png"))[:3]
    assert sources
    for source in sources:
        grey = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE)
        bits = 8 if syntax == "jpeg_baseline" else 12
        found = shown(dicom_bytes(grey, Spec(syntax=syntax, bits=bits)))
        expected = min_max(stored_values(grey, Spec(bits=bits)), False)
        assert np.corrcoef(found.ravel(), expected.ravel())[0, 1] > 0.98, (syntax, source.name)


def rsna_archive(path: Path) -> tuple[Path, dict[str, str]]:
    """RSNA Pneumonia Detection's layout: stage_2_train_images/<patientId>.dcm, a box table with several rows for a
    positive image and `Target`, the 3-way class table (a row per box row), unlabelled test images, a submission."""
    members, boxes, classes, targets = {}, [], [], {}
    for n in range(24):
        image_id = f"{n:08x}-1c2d-4e5f-8a9b-{n:012x}"
        target = n % 3 == 0
        grey = chest(n)
        if target:
            cv2.circle(grey, (40, 50), 18, 255, -1)
        tags = {"PatientID": image_id, "PatientName": image_id, "PatientSex": "MF"[n % 2], "ViewPosition": "PA"}
        members[f"stage_2_train_images/{image_id}.dcm"] = dicom_bytes(grey, Spec(syntax="jpeg_baseline", tags=tags))
        rows = (
            [[image_id, 10, 20, 30, 40, 1], [image_id, 50, 20, 30, 40, 1]]
            if target
            else [[image_id, "", "", "", "", 0]]
        )
        boxes += rows
        classes += [[image_id, "Lung Opacity" if target else ("Normal", "No Lung Opacity / Not Normal")[n % 2]]] * len(
            rows
        )
        targets[image_id] = str(int(target))
    for n in range(3):
        members[f"stage_2_test_images/test{n}.dcm"] = dicom_bytes(chest(100 + n), Spec(syntax="jpeg_baseline"))
    members["stage_2_train_labels.csv"] = csv_bytes(["patientId", "x", "y", "width", "height", "Target"], boxes)
    members["stage_2_detailed_class_info.csv"] = csv_bytes(["patientId", "class"], classes)
    members["stage_2_sample_submission.csv"] = csv_bytes(
        ["patientId", "PredictionString"], [["test0", "0.5 0 0 10 10"]]
    )
    return write_zip(path, members), targets


def test_add_reads_the_rsna_pneumonia_layout_target_per_image_and_offers_the_three_way_class(tmp_path: Path) -> None:
    archive, targets = rsna_archive(tmp_path / "rsna-pneumonia-detection-challenge.zip")
    limits = Limits.from_settings(RestructureSettings())
    proposal = propose(
        "rsna", list_archive(archive, limits), {"kaggle": None, "archive": archive.name, "fetch": "path"}
    )
    text = render(proposal, "test")
    entry = DatasetSpec.model_validate({"name": "rsna", **yaml.safe_load(text)})
    assert entry.labels is not None and entry.labels.table == "stage_2_train_labels.csv"
    assert entry.labels.label_column == "Target" and entry.extensions == [".dcm"]
    assert "stage_2_detailed_class_info.csv" in text  # the alternative, named in the evidence
    restructure(archive, entry, RestructureSettings(), tmp_path / "interim")
    rows = manifest.read_interim(tmp_path / "interim")
    assert {Path(row.member).stem: row.label for row in rows} == targets  # each image once, box rows or not
    assert all(row.member.startswith("stage_2_train_images/") for row in rows)


def test_add_reads_the_rsna_mammography_layout_with_cancer_named_and_patients_whole(tmp_path: Path) -> None:
    """train_images/<patient_id>/<image_id>.dcm, much of it JPEG 2000, some MONOCHROME1; `cancer` is a flag most
    rows leave unset, so add asks for it by name; the patient folders are groups, not labels."""
    members, rows = {}, []
    for n in range(40):
        patient, image_id, cancer = 100 + n // 4, 5000 + n, int(n % 8 == 0)
        grey = chest(n)
        if cancer:
            cv2.circle(grey, (30, 30), 10, 255, -1)
        spec = Spec(syntax=("jpeg2000_lossless", "explicit")[n % 2], bits=12, monochrome1=n % 3 == 0)
        members[f"train_images/{patient}/{image_id}.dcm"] = dicom_bytes(grey, spec)
        rows.append([1 + n % 2, patient, image_id, "LR"[n % 2], "CC", 60, cancer, cancer, cancer, "", 0, "B", 49, 0])
    header = ["site_id", "patient_id", "image_id", "laterality", "view", "age", "cancer", "biopsy", "invasive"]
    header += ["BIRADS", "implant", "density", "machine_id", "difficult_negative_case"]
    members["train.csv"] = csv_bytes(header, rows)
    members["test.csv"] = csv_bytes(["site_id", "patient_id", "image_id"], [row[:3] for row in rows[:4]])
    archive = write_zip(tmp_path / "rsna-breast-cancer-detection.zip", members)
    limits = Limits.from_settings(RestructureSettings())
    origin = {"kaggle": None, "archive": archive.name, "fetch": "path"}
    with pytest.raises(PipelineError, match="--label-column"):
        propose("mammo", list_archive(archive, limits), origin)
    text = render(propose("mammo", list_archive(archive, limits), origin, label_column="cancer"), "test")
    entry = DatasetSpec.model_validate({"name": "mammo", **yaml.safe_load(text)})
    assert entry.labels is not None and entry.labels.group_column == "patient_id"
    assert "laterality" in entry.labels.metadata or "view" in entry.labels.metadata
    restructure(archive, entry, RestructureSettings(), tmp_path / "interim")
    found = {Path(row.member).stem: row for row in manifest.read_interim(tmp_path / "interim")}
    assert {key: (row.label, row.group) for key, row in found.items()} == {
        str(row[2]): (str(row[6]), str(row[1])) for row in rows
    }
    inverted = [row for row in found.values() if "MONOCHROME1 inverted" in dict(row.made)["window"]]
    assert len(inverted) == 14  # n % 3 == 0 of 40


def test_dicom_age_strings_fall_in_the_reports_ten_year_bands() -> None:
    from medimage.reporting.clinical import subgroup_value

    assert [subgroup_value("PatientAge", age) for age in ("045Y", "100Y", "006M", "010W", "")] == [
        "40-49",
        "100-109",
        "0-9",
        "0-9",
        "unknown",
    ]
    assert subgroup_value("Patient Age", "58") == "50-59" and subgroup_value("PatientSex", "F") == "F"


def test_the_rsna_pneumonia_stand_in_has_the_real_layout_and_runs_offline_under_dvc(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "project",
        {
            "datasets": ["rsna_pneumonia"],
            "fetch": {"synthetic": {"images_per_class": 30, "image_size": 32}},
            "train": {"model": "sklearn_linear", "loader": "opencv", "image_size": 32},
            "evaluate": {"bootstrap_resamples": 100},
        },
    )
    run_in(project, "dvc", "repro", "evaluate@rsna_pneumonia")
    with zipfile.ZipFile(project / "data" / "raw" / "rsna_pneumonia.zip") as archive:
        tables = {
            name: list(csv.DictReader(io.StringIO(archive.read(name).decode())))
            for name in ("stage_2_train_labels.csv", "stage_2_detailed_class_info.csv", "stage_2_sample_submission.csv")
        }
        images = {name: archive.read(name) for name in archive.namelist() if name.endswith(".dcm")}
    boxes, classes = tables["stage_2_train_labels.csv"], tables["stage_2_detailed_class_info.csv"]
    assert [row["patientId"] for row in boxes] == [row["patientId"] for row in classes]  # row for row
    assert all(
        (box["Target"] == "1") == (row["class"] == "Lung Opacity") for box, row in zip(boxes, classes, strict=True)
    )
    targets = {row["patientId"]: row["Target"] for row in boxes}
    positives = sum(target == "1" for target in targets.values())
    assert len(boxes) == len(targets) + positives  # two box rows a positive image, one row a negative
    assert {row["patientId"] for row in tables["stage_2_sample_submission.csv"]} == {
        Path(name).stem for name in images if name.startswith("stage_2_test_images/")
    }
    for name, data in images.items():
        header = pydicom.dcmread(io.BytesIO(data))
        assert header.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit, name
        assert (header.PhotometricInterpretation, header.BitsStored) == ("MONOCHROME2", 8)
        assert header.PatientID == Path(name).stem and str(uuid.UUID(Path(name).stem)) == Path(name).stem
    rows = manifest.read_interim(project / "data" / "interim" / "rsna_pneumonia")
    names = {"0": "no_lung_opacity", "1": "lung_opacity"}
    assert {Path(row.member).stem: row.label for row in rows} == {key: names[value] for key, value in targets.items()}
    assert {dict(row.made)["transfer_syntax"] for row in rows} == {"JPEG Baseline (Process 1)"}
    metadata = (project / "data" / "interim" / "rsna_pneumonia" / "metadata.csv").read_text().splitlines()
    assert metadata[0] == "path,PatientSex,PatientAge,ViewPosition" and len(metadata) == len(rows) + 1
    headline = json.loads((project / "metrics" / "rsna_pneumonia" / "eval.json").read_text())
    assert headline["roc_auc"] > 0.8
