"""Table-labelled archives in the layouts of HAM10000, APTOS 2019 and ISIC 2019, packed from the real images in
the real-image folder, harness.project.REALDATA (BCCD smears with their real WBC labels, brain MRIs, COVID
radiographs), quirks included."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from pathlib import Path

from harness.project import REALDATA

BCCD = REALDATA / "BCCD_Dataset" / "BCCD" / "JPEGImages"
BCCD_LABELS = REALDATA / "blood-cells" / "dataset-master" / "labels.csv"
BRAIN = REALDATA / "brain-mri-yes-no"
COVID = REALDATA / "covid19-radiography-DERIVATIVE-resized224" / "COVID-19_Radiography_Dataset"
RARE = 10  # labels with fewer images are left out of the archive: their rows then name missing images


def csv_bytes(header: list[str], rows: list[list[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def write(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def ham10000(path: Path, label_column: str = "dx", with_dx_type: bool = True) -> tuple[Path, dict[str, str], dict]:
    """HAM10000's layout with BCCD's real images and their real WBC labels (labels.csv): two image folders and a
    lower-case copy of the first, `HAM10000_metadata.csv` (lesion_id, image_id, dx, ...), a pixel table; images
    whose labels.csv row is blank or multi-label ship without a row. Returns the archive, image id -> label for
    every image that must be labelled, and lesion id -> image ids."""
    categories = {}
    with BCCD_LABELS.open(newline="") as handle:
        for row in csv.DictReader(handle):
            categories[f"BloodImage_{int(row['Image']):05d}"] = row["Category"].strip()
    present = {path.stem: path for path in sorted(BCCD.glob("*.jpg"))}
    single = {image: label for image, label in categories.items() if label and "," not in label}
    counts = {label: sum(1 for value in single.values() if value == label) for label in set(single.values())}
    rows, labelled, lesions = [], {}, {}
    for index, (image, label) in enumerate(sorted(single.items())):
        lesion = "" if index % 17 == 0 else f"HAM_{index // 2:07d}"  # two photographs a lesion; a few unknown
        rows.append([lesion, image, label, "histo", 40 + index % 40, ("male", "female")[index % 2], "back"])
        if image in present and counts[label] >= RARE:
            labelled[image] = label
            if lesion:
                lesions.setdefault(lesion, []).append(image)
    header = ["lesion_id", "image_id", label_column, "dx_type", "age", "sex", "localization"]
    if not with_dx_type:
        header.remove("dx_type")
        rows = [row[:3] + row[4:] for row in rows]
    members: dict[str, bytes] = {"HAM10000_metadata.csv": csv_bytes(header, rows)}
    shipped = sorted(image for image in present if image in labelled or image not in single)
    for number, image in enumerate(shipped):
        folder = "HAM10000_images_part_1" if number % 2 == 0 else "HAM10000_images_part_2"
        members[f"{folder}/{image}.jpg"] = present[image].read_bytes()
    for name in [member for member in members if member.startswith("HAM10000_images_part_1/")]:
        members["ham10000_images_part_1/" + name.split("/", 1)[1]] = members[name]
    pixels = [[index % 256] * 64 + [index % 7] for index in range(40)]
    members["hmnist_8_8_L.csv"] = csv_bytes([f"pixel{n:04d}" for n in range(64)] + ["label"], pixels)
    return write(path, members), labelled, lesions


def aptos(path: Path) -> tuple[Path, dict[str, str], set[str]]:
    """APTOS 2019's layout with the real brain MRIs: train_images/ labelled by train.csv (id_code, diagnosis 0/1),
    test_images/ unlabelled (test.csv has ids only), a sample_submission.csv of zeros. Returns the archive,
    id -> diagnosis of the training images, and the test ids."""
    members: dict[str, bytes] = {}
    train, test = {}, set()
    for label, diagnosis in (("yes", "1"), ("no", "0")):
        for index, image in enumerate(sorted((BRAIN / label).iterdir())):
            id_code = hashlib.sha256(f"{label}/{image.name}".encode()).hexdigest()[:12]
            folder = "test_images" if index % 4 == 3 else "train_images"
            members[f"{folder}/{id_code}{image.suffix.lower()}"] = image.read_bytes()
            if folder == "train_images":
                train[id_code] = diagnosis
            else:
                test.add(id_code)
    members["train.csv"] = csv_bytes(["id_code", "diagnosis"], sorted(train.items()))
    members["test.csv"] = csv_bytes(["id_code"], [[id_code] for id_code in sorted(test)])
    members["sample_submission.csv"] = csv_bytes(["id_code", "diagnosis"], [[i, 0] for i in sorted(test)])
    return write(path, members), train, test


def isic(path: Path) -> tuple[Path, dict[str, str]]:
    """ISIC 2019's layout with the COVID radiographs: images nested twice, a one-hot ground truth (1.0/0.0, an UNK
    column never set, two rows with nothing set) and a metadata table. Returns the archive and image -> label."""
    members: dict[str, bytes] = {}
    rows, labelled = [], {}
    images = [(label, image) for label in ("COVID", "Normal") for image in sorted((COVID / label).glob("*.png"))]
    for number, (label, image) in enumerate(images):
        name = f"ISIC_{number:07d}"
        members[f"ISIC_2019_Training_Input/ISIC_2019_Training_Input/{name}.png"] = image.read_bytes()
        unset = number in (5, 25)
        rows.append([name, *(f"{label == column and not unset:.1f}" for column in ("COVID", "Normal")), "0.0"])
        if not unset:
            labelled[name] = label.upper()
    members["ISIC_2019_Training_GroundTruth.csv"] = csv_bytes(["image", "COVID", "NORMAL", "UNK"], rows)
    metadata = [[row[0], 50, "torso", f"IL_{index // 2:07d}", "female"] for index, row in enumerate(rows)]
    header = ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"]
    members["ISIC_2019_Training_Metadata.csv"] = csv_bytes(header, metadata)
    return write(path, members), labelled
