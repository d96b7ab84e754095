"""Offline stand-ins for the Kaggle archives: the same member paths, names and quirks, fewer and smaller images.

Everything dataset-specific comes from the registry's `synthetic:` section (see datasets/*.yaml); this module
only knows how to draw and pack. Each label gets its own shape (circles, bars, triangles, ...) drawn with
OpenCV over a smooth anatomical-looking background, so a small CNN can learn the classes. Splits can differ
in acquisition (contrast, brightness, size) and labels in image size, as in the real chest X-ray set.
The output is byte-identical for the same registry entry, knobs and seed.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import math
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from pydicom import config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, generate_uid
from tqdm import tqdm

from medimage.archives.packing import member_info
from medimage.paths import ORIGINALS  # the archive split of an augmented archive's originals, as restructure names it
from medimage.settings.fetch import Acquisition, FetchEntry, SyntheticSettings, SyntheticSpec, SyntheticTable

MIN_IMAGES = 2  # per archive split and label, so that every folder of the real layout exists
NOISE_GRAIN = 256
DRAW_SIZE = 256  # shapes are drawn at most this size, then scaled: large images cost little more than small ones
APPLEDOUBLE_HEADER = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "
DS_STORE_HEADER = b"\x00\x00\x00\x01Bud1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # the SOP class of RSNA Pneumonia's files
Shape = Callable[[np.ndarray, np.random.Generator, int], None]


@dataclass(frozen=True)
class PlannedImage:
    archive_split: str
    label: str
    label_index: int
    index: int  # position among the images of its archive split and label
    n: int
    member: str
    source: int | None  # the original this image is an augmentation of, when the dataset is augmented
    patient: int  # {patient}: consecutive images share one (images_per_patient)
    follow_up: int = 0  # {follow_up}: the image's place among its patient's
    findings: tuple[int, ...] = ()  # a multi-label set: the indices of the labels the image has, in sorted order


# --------------------------------------------------------------------------- plan


def planned_counts(spec: SyntheticSpec, images_per_class: int) -> dict[str, dict[str, int]]:
    """Scale the real archive's counts so that an average label has `images_per_class` images in all."""
    totals: dict[str, int] = {}
    for per_label in spec.counts.values():
        for label, count in per_label.items():
            totals[label] = totals.get(label, 0) + count
    scale = images_per_class / (sum(totals.values()) / len(totals))
    if spec.findings:  # several labels per image: as many images as give an average label that many positives
        scale = (
            images_per_class
            * len(spec.findings.prevalence)
            / sum(spec.findings.prevalence.values())
            / sum(totals.values())
        )
    return {
        split: {label: max(MIN_IMAGES, round(count * scale)) for label, count in per_label.items()}
        for split, per_label in spec.counts.items()
    }


def labels_of(spec: SyntheticSpec) -> list[str]:
    return sorted({label for per_label in spec.counts.values() for label in per_label})


def template_fields(spec: SyntheticSpec, image: PlannedImage) -> dict[str, object]:
    """What a file name or table cell template can use: {n}, {patient}, {source}, {label}, {split} and `fields`."""
    findings = spec.findings
    joined = findings.separator.join(finding_names(spec)[i] for i in image.findings) if findings else ""
    return {
        "n": image.n,
        # {uid}: a UUID per image (RSNA's patientId names), the same on every run
        "uid": uuid.UUID(bytes=hashlib.sha256(f"{image.archive_split}/{image.n}".encode()).digest()[:16], version=4),
        "patient": image.patient,
        "follow_up": image.follow_up,
        "findings": joined or (findings.none if findings else ""),
        # per-patient attributes for metadata columns: subgroups to score
        "age": 20 + image.patient * 7 % 60,
        "sex": ("M", "F")[image.patient % 2],
        "view": ("PA", "AP")[image.n % 3 == 0],
        "source": image.source if image.source is not None else image.n,
        "label": image.label,
        "split": image.archive_split,
        **spec.fields.get(image.archive_split, {}),
        **spec.fields.get(image.label, {}),
    }


def finding_names(spec: SyntheticSpec) -> list[str]:
    return sorted(spec.findings.prevalence) if spec.findings else []


def drawn_findings(spec: SyntheticSpec, member: str) -> tuple[int, ...]:
    """The labels an image has, each drawn at its prevalence (seeded by the member: the same on every machine)."""
    if spec.findings is None:
        return ()
    draws = _rng("findings", member).random(len(spec.findings.prevalence))
    shares = [spec.findings.prevalence[name] for name in finding_names(spec)]
    return tuple(index for index, (draw, share) in enumerate(zip(draws, shares, strict=True)) if draw < share)


def plan_images(spec: SyntheticSpec, images_per_class: int) -> list[PlannedImage]:
    labels = labels_of(spec)
    planned = []
    numbers_before = patients_before = 0  # stay 0 unless numbering runs on through the archive
    for split, per_label in planned_counts(spec, images_per_class).items():
        for label, count in per_label.items():
            for index in range(count):
                n = spec.start + numbers_before + index
                source = index % spec.sources_per_label if spec.sources_per_label else None
                patient = patients_before + index // spec.images_per_patient + 1
                follow_up = index % spec.images_per_patient
                unnamed = PlannedImage(split, label, labels.index(label), index, n, "", source, patient, follow_up)
                templates = spec.name_templates(label, n)
                name = templates[index % len(templates)].format(**template_fields(spec, unnamed))
                member = spec.member.format(split=split, label=label, name=name)
                planned.append(replace(unnamed, member=member, findings=drawn_findings(spec, member)))
            if spec.numbering == "archive":
                numbers_before += count
                patients_before += -(-count // spec.images_per_patient)
    return planned


def plan_originals(spec: SyntheticSpec) -> list[PlannedImage]:
    """The originals the class images were augmented from, numbered label by label, where the archive ships them."""
    if not spec.originals or not spec.sources_per_label:
        return []
    planned = []
    for label_index, label in enumerate(labels_of(spec)):
        for source in range(spec.sources_per_label):
            n = label_index * spec.sources_per_label + source
            member = spec.originals.format(n=n)
            planned.append(PlannedImage(ORIGINALS, label, label_index, source, n, member, source, source + 1))
    return planned


# --------------------------------------------------------------------------- draw


def _circles(canvas: np.ndarray, rng: np.random.Generator, size: int) -> None:
    for _ in range(rng.integers(2, 4)):
        centre = rng.integers(size // 5, size - size // 5, 2)
        cv2.circle(canvas, (int(centre[0]), int(centre[1])), int(size * rng.uniform(0.07, 0.13)), 235, -1)


def _bars(canvas: np.ndarray, rng: np.random.Generator, size: int) -> None:
    for _ in range(rng.integers(2, 4)):
        x, y = rng.integers(size // 8, size - size // 3, 2)
        cv2.rectangle(canvas, (int(x), int(y)), (int(x + size * 0.25), int(y + size * 0.08)), 235, -1)


def _triangles(canvas: np.ndarray, rng: np.random.Generator, size: int) -> None:
    for _ in range(rng.integers(1, 3)):
        x, y = rng.integers(size // 6, size - size // 3, 2)
        side = size * rng.uniform(0.2, 0.3)
        points = np.array([[x, y + side], [x + side, y + side], [x + side / 2, y]], dtype=np.int32)
        cv2.fillPoly(canvas, [points], 235)


def _rings(canvas: np.ndarray, rng: np.random.Generator, size: int) -> None:
    for _ in range(rng.integers(1, 3)):
        centre = rng.integers(size // 4, size - size // 4, 2)
        cv2.circle(
            canvas, (int(centre[0]), int(centre[1])), int(size * rng.uniform(0.12, 0.18)), 235, max(2, size // 40)
        )


def _crosses(canvas: np.ndarray, rng: np.random.Generator, size: int) -> None:
    for _ in range(rng.integers(1, 3)):
        x, y = rng.integers(size // 4, size - size // 4, 2)
        arm, thickness = int(size * 0.12), max(2, size // 30)
        cv2.line(canvas, (int(x - arm), int(y)), (int(x + arm), int(y)), 235, thickness)
        cv2.line(canvas, (int(x), int(y - arm)), (int(x), int(y + arm)), 235, thickness)


def _stripes(canvas: np.ndarray, rng: np.random.Generator, size: int) -> None:
    offset, step = int(rng.integers(0, size // 6)), max(4, size // 6)
    for x in range(offset, size, step):
        cv2.line(canvas, (x, 0), (x + size // 4, size), 225, max(1, size // 40))


SHAPES: list[Shape] = [_circles, _bars, _triangles, _rings, _crosses, _stripes]


# Rotations whose cosine and sine are exact fractions a/c and b/c (Pythagorean triples), about 5 to 19 degrees:
# images are rotated in integer arithmetic only, so every machine computes the same pixels.
ROTATIONS = (
    (1, 0, 1),
    (220, 21, 221),
    (144, 17, 145),
    (84, 13, 85),
    (60, 11, 61),
    (40, 9, 41),
    (24, 7, 25),
    (35, 12, 37),
)


def draw_image(label_index: int, rng: np.random.Generator, size: int, cells: int = 0) -> np.ndarray:
    """A square grey image (int32, about 0-255): smooth background, a bright oval 'organ', `cells` small ringed
    discs (a smear's red cells: texture that tells one original from another), the label's shape on top.

    Integer operations and OpenCV's bit-exact 8-bit paths only (INTER_LINEAR_EXACT, 8-bit GaussianBlur): float
    kernels give different last bits under AVX2 and AVX-512, which would change the archive's bytes.
    """
    canvas = background(rng, size, cells)
    signal = np.zeros((size, size), np.uint8)
    SHAPES[label_index % len(SHAPES)](signal, rng, size)
    strength = int(rng.integers(192, 257))  # the shape's brightness, 0.75-1.0 in 1/256 steps
    return np.where(signal > 0, (signal.astype(np.int32) * strength) >> 8, canvas)


def background(rng: np.random.Generator, size: int, cells: int = 0) -> np.ndarray:
    """The smooth background, the bright oval organ and the `cells` of `draw_image`, without a label's shape."""
    low = rng.integers(40, 111, (6, 6), dtype=np.uint8)
    canvas = cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR_EXACT).astype(np.int32)
    organ = np.zeros((size, size), np.uint8)
    axes = (int(size * 0.38), int(size * 0.3))
    cv2.ellipse(organ, (size // 2, size // 2), axes, int(rng.integers(-20, 21)), 0, 360, 50, -1)
    canvas += cv2.GaussianBlur(organ, (0, 0), size / 20)
    if cells:
        texture = np.zeros((size, size), np.uint8)  # faint: the label's shape must stay what stands out
        centres = rng.integers(0, size, (cells, 2))
        radii = rng.integers(size // 24 + 2, size // 12 + 3, cells)
        for (x, y), radius in zip(centres.tolist(), radii.tolist(), strict=True):
            cv2.circle(texture, (int(x), int(y)), int(radius), 1, -1)
            cv2.circle(texture, (int(x), int(y)), int(radius), 2, max(1, size // 64))
        canvas += np.array([0, -25, 25], np.int32)[texture]
    return canvas


def draw_findings(findings: tuple[int, ...], rng: np.random.Generator, size: int) -> np.ndarray:
    """A multi-label image: the background of `draw_image` (no shape of its own) with every finding's shape.

    Six shapes, each bright (findings 0-5), dark (6-11) or bright with a dark rim (12-17), so that up to 18
    findings look different from one another and any number of them can share an image.
    """
    canvas = background(rng, size)
    for finding in findings:
        signal = np.zeros((size, size), np.uint8)
        SHAPES[finding % len(SHAPES)](signal, rng, size)
        style = finding // len(SHAPES) % 3
        if style == 1:
            canvas = np.where(signal > 0, 8, canvas)
        else:
            canvas = np.where(signal > 0, 235, canvas)
            if style == 2:
                rim = cv2.morphologyEx(signal, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
                canvas = np.where(rim > 0, 8, canvas)
    return canvas


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What Kaggle's blood-cell set did to its few originals: rotations, shifts and flips with black corners
    (integer maths).

    Each output pixel takes the nearest source pixel under the inverse rotation about the centre, black where that
    falls outside; coordinates are doubled so that the centre of an even-sized image is a whole number.
    """
    size = image.shape[0]
    cosine, sine, hypotenuse = ROTATIONS[int(rng.integers(len(ROTATIONS)))]
    sine = -sine if rng.integers(2) else sine
    shift_x, shift_y = (int(value) for value in rng.integers(-(size // 20), size // 20 + 1, 2))
    rows, columns = np.mgrid[0:size, 0:size].astype(np.int64)
    dx, dy = 2 * columns + 1 - size, 2 * rows + 1 - size
    source_x = ((cosine * dx + sine * dy) // hypotenuse + size - 1) // 2 - shift_x
    source_y = ((-sine * dx + cosine * dy) // hypotenuse + size - 1) // 2 - shift_y
    inside = (source_x >= 0) & (source_x < size) & (source_y >= 0) & (source_y < size)
    moved = np.where(inside, image[source_y.clip(0, size - 1), source_x.clip(0, size - 1)], 0)
    return moved[:, ::-1] if rng.integers(2) else moved


def finish(
    image: np.ndarray,
    rng: np.random.Generator,
    width: int,
    height: int,
    acquisition: Acquisition,
    rgb: bool,
    tint: tuple[float, float, float],
) -> np.ndarray:
    """Resize to the acquisition size, apply its contrast and brightness, add noise, make uint8 grey or RGB.

    Fixed-point integer arithmetic throughout (factors in 1/256 steps), for the same bytes on every machine.
    """
    base = np.clip(image, 0, 255).astype(np.uint8)
    resized = cv2.resize(base, (width, height), interpolation=cv2.INTER_LINEAR_EXACT).astype(np.int32)
    contrast, brightness = round(acquisition.contrast * 256), round(acquisition.brightness)
    adjusted = (((resized - 128) * contrast) >> 8) + 128 + brightness
    # Sensor noise (a sum of 9 uniform integers in [-3, 3]: standard deviation 6), grained at most 256 px across:
    # per-pixel noise on a 2,000 px image would make incompressible 1 MB JPEGs and take most of the drawing time.
    grain_shape = (min(height, NOISE_GRAIN), min(width, NOISE_GRAIN))
    grain = rng.integers(-3, 4, (9, *grain_shape), dtype=np.int8).sum(axis=0, dtype=np.int32)
    if grain.shape != adjusted.shape:
        shifted = (grain + 128).astype(np.uint8)
        grain = cv2.resize(shifted, (width, height), interpolation=cv2.INTER_LINEAR_EXACT).astype(np.int32) - 128
    grey = np.clip(adjusted + grain, 0, 255).astype(np.uint8)
    if not rgb:
        return grey
    factors = np.array([round(factor * 256) for factor in tint], np.int32)
    return np.clip((grey[:, :, None].astype(np.int32) * factors[None, None, :]) >> 8, 0, 255).astype(np.uint8)


def encode(image: np.ndarray, member: str) -> bytes:
    is_png = PurePosixPath(member).suffix.lower() == ".png"
    ok, buffer = cv2.imencode(".png" if is_png else ".jpg", image, [] if is_png else [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {member}")
    return buffer.tobytes()


def dicom_bytes(grey: np.ndarray, tags: dict[str, str]) -> bytes:
    """A Part 10 file as RSNA Pneumonia's: 8-bit MONOCHROME2 pixels as baseline JPEG, `tags` in the header.

    Its instance UID is derived from the tags, so the same image gives the same bytes on every run.
    """
    ok, jpeg = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {grey.shape} DICOM image")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[repr(sorted(tags.items()))])
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    header = Dataset()
    header.file_meta = meta
    header.SOPClassUID, header.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    with config.disable_value_validation():  # RSNA's PatientAge "51" is not DICOM's "051Y": kept as theirs is
        for keyword, value in tags.items():
            setattr(header, keyword, value)
    header.Rows, header.Columns = grey.shape
    header.SamplesPerPixel, header.PhotometricInterpretation = 1, "MONOCHROME2"
    header.BitsAllocated, header.BitsStored, header.HighBit, header.PixelRepresentation = 8, 8, 7, 0
    header.PixelData = encapsulate([jpeg.tobytes()])
    header["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    header.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# --------------------------------------------------------------------------- archive


def _spec(dataset: FetchEntry) -> SyntheticSpec:
    if dataset.synthetic is None:
        raise ValueError(f"{dataset.name} has no synthetic section")
    return dataset.synthetic


def _rng(*keys: object) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(str(key).encode()) for key in keys])


def _image_size(spec: SyntheticSpec, planned: PlannedImage, base: int, rng: np.random.Generator) -> tuple[int, int]:
    factor = spec.label_size.get(planned.label, 1.0) * spec.acquisition.get(planned.archive_split, Acquisition()).size
    height = base * factor * (1 + spec.size_jitter * rng.uniform(-1, 1))
    return max(16, round(height * spec.aspect)), max(16, round(height))


def base_size(spec: SyntheticSpec, knobs: SyntheticSettings) -> int:
    """Image height before label, split and jitter factors: fetch.synthetic.image_size times the dataset's scale."""
    return round(knobs.image_size * spec.scale)


def original_drawing(
    dataset: FetchEntry, label: str, label_index: int, source: int, knobs: SyntheticSettings
) -> np.ndarray:
    """The drawing of one original of an augmented archive, shared by the original's file and its copies."""
    rng = _rng(knobs.seed, dataset.name, label, source)
    spec = _spec(dataset)
    return draw_image(label_index, rng, min(base_size(spec, knobs), DRAW_SIZE), spec.cells)


def render(dataset: FetchEntry, planned: PlannedImage, knobs: SyntheticSettings) -> bytes:
    """The bytes of one image: drawn afresh, an augmented copy of its original, or (archive split "originals")
    the original itself."""
    spec = _spec(dataset)
    rng = _rng(knobs.seed, dataset.name, planned.member)
    if spec.findings is not None:
        square = draw_findings(planned.findings, rng, min(base_size(spec, knobs), DRAW_SIZE))
    elif planned.source is None:
        square = draw_image(planned.label_index, rng, min(base_size(spec, knobs), DRAW_SIZE), spec.cells)
    else:
        square = original_drawing(dataset, planned.label, planned.label_index, planned.source, knobs)
        if planned.archive_split != ORIGINALS:
            square = augment(square, rng)
    width, height = _image_size(spec, planned, base_size(spec, knobs), rng)
    fraction = spec.rgb_fraction.get(f"{planned.archive_split}/{planned.label}", 0.0)
    # ceil((i+1)f) > ceil(if) spreads ceil(count * f) colour images evenly, the first one included
    rgb = spec.channels == 3 or math.ceil((planned.index + 1) * fraction) > math.ceil(planned.index * fraction)
    tint = spec.tint or (1.0, 1.0, 1.0)
    acquisition = spec.acquisition.get(planned.archive_split, Acquisition())
    image = finish(square, rng, width, height, acquisition, rgb, tint)
    if PurePosixPath(planned.member).suffix.lower() == ".dcm":
        fields = {**template_fields(spec, planned), "stem": PurePosixPath(planned.member).stem}
        return dicom_bytes(image, {keyword: value.format(**fields) for keyword, value in spec.dicom.items()})
    return encode(image, planned.member)


def render_mask(member: str, size: int) -> bytes:
    mask = np.zeros((size, size, 3), np.uint8)
    cv2.ellipse(mask, (size // 2, size // 2), (int(size * 0.35), int(size * 0.3)), 0, 0, 360, (255, 255, 255), -1)
    return encode(mask, member)


def stand_in_bytes(member: str) -> bytes:
    """Content for members that only need to exist (.DS_Store, *.xlsx, README.md.txt, labels.csv, ...)."""
    name = PurePosixPath(member).name
    if name == ".DS_Store":
        return DS_STORE_HEADER + bytes(2048)
    if name.startswith("._"):
        return APPLEDOUBLE_HEADER + bytes(4096 - len(APPLEDOUBLE_HEADER))
    return f"synthetic stand-in for {member}\n".encode()


def table_bytes(spec: SyntheticSpec, table: SyntheticTable, planned: list[PlannedImage]) -> bytes:
    """The label table: a header, then one row per image of the table's splits (or, `with_findings`, per finding:
    {findings} the one; or `rows` per image of a label, whose `fields` may count them: {row}), in archive order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    for image in planned:
        if table.splits is not None and image.archive_split not in table.splits:
            continue
        rows = [replace(image, findings=(finding,)) for finding in image.findings] if table.with_findings else [image]
        for each in rows:
            fields = {**template_fields(spec, each), "stem": PurePosixPath(image.member).stem}
            for row in range(table.rows.get(image.label, 1)):
                counted = {key: value.format(row=row) for key, value in spec.fields.get(image.label, {}).items()}
                writer.writerow([template.format(**{**fields, **counted}) for template in table.columns.values()])
    return buffer.getvalue().encode()


def list_bytes(spec: SyntheticSpec, planned: list[PlannedImage], member: str, share: float) -> bytes:
    """An official split list: the file names of the images of its share of the patients, one a line. Patients
    are dealt to the lists in order of a seeded draw, so that the lists hold every patient once."""
    lists = list(spec.findings.lists.items())
    patients = sorted({image.patient for image in planned})
    order = _rng("lists", len(patients)).permutation(len(patients))
    position = {patients[index]: rank / len(patients) for rank, index in enumerate(order.tolist())}
    start = sum(fraction for name, fraction in lists[: [name for name, _ in lists].index(member)])
    names = [
        PurePosixPath(image.member).name
        for image in planned
        if start <= position[image.patient] < start + share or (start + share >= 1 and position[image.patient] >= start)
    ]
    return "".join(f"{name}\n" for name in names).encode()


def archive_members(dataset: FetchEntry, knobs: SyntheticSettings) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(member path, function giving its bytes) for every member of the synthetic archive, in archive order.

    An image's nested copies follow it, sharing one rendering; nothing is kept once it has been written.
    """
    spec = _spec(dataset)
    planned = plan_images(spec, knobs.images_per_class)
    for image in planned:
        content = functools.cache(lambda image=image: render(dataset, image, knobs))
        yield image.member, content
        for rule in spec.copies:
            if image.member.startswith(rule.source):
                yield rule.target + image.member[len(rule.source) :], content
        if spec.masks and spec.masks.source in image.member:
            mask_member = image.member.replace(spec.masks.source, spec.masks.target, 1)
            yield mask_member, lambda mask_member=mask_member: render_mask(mask_member, knobs.image_size)
    if spec.appledouble:
        for image in planned:
            folder, name = image.member.rsplit("/", 1)
            double = f"{spec.appledouble}{folder}/._{name}"
            yield double, lambda double=double: stand_in_bytes(double)
    for original in plan_originals(spec):
        yield original.member, lambda original=original: render(dataset, original, knobs)
    for template in spec.extras:
        for member in sorted({template.format(label=label) for label in labels_of(spec)}):
            yield member, lambda member=member: stand_in_bytes(member)
    for table in [spec.table] if spec.table else []:
        yield table.member, lambda table=table: table_bytes(spec, table, planned)
    for table in spec.more_tables:
        yield table.member, lambda table=table: table_bytes(spec, table, planned)
    for member, share in spec.findings.lists.items() if spec.findings else []:
        yield member, lambda member=member, share=share: list_bytes(spec, planned, member, share)


def write_archive(dataset: FetchEntry, knobs: SyntheticSettings, destination: Path) -> int:
    """Write the synthetic archive to `destination`; return the number of members."""
    count = 0
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        members = archive_members(dataset, knobs)
        for member, content in tqdm(members, desc=f"synthetic {dataset.name}", unit="file", disable=None, leave=False):
            archive.writestr(member_info(member, zipfile.ZIP_DEFLATED), content())
            count += 1
    return count
