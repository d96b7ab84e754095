"""Copies of one image found among others (medimage.splitting.matching), on constructed and on real images.

The real-image tests (skipped where the real-image folder, harness.project.REALDATA, is absent) are the evidence
for split.near_duplicates: keypoints: copies made here of real BCCD, brain MRI and chest X-ray images with known
transformations are found and kept in one split, distinct real images are not joined, and Kaggle's own augmented
blood-cell images are matched to the BCCD originals they were made from, with the label that labels.csv gives the
original.
"""

from __future__ import annotations

import csv
import itertools
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from harness.project import REALDATA, file_digest
from medimage import manifest
from medimage.archives.unpacking import restructure
from medimage.settings.project import DatasetSpec
from medimage.settings.restructure import RestructureSettings
from medimage.settings.split import SplitSettings
from medimage.splitting import matching
from medimage.splitting.assignment import UnionFind
from medimage.splitting.resplit import split_dataset, write_split
from tests.samples import write_zip

real = pytest.mark.skipif(not REALDATA.is_dir(), reason=f"real sample images not found at {REALDATA}")
BCCD = REALDATA / "BCCD_Dataset" / "BCCD" / "JPEGImages"
BRAIN = REALDATA / "brain-mri-yes-no"
COVID = REALDATA / "covid19-radiography-DERIVATIVE-resized224" / "COVID-19_Radiography_Dataset"
KAGGLE_BLOOD = REALDATA / "blood-cells"
# Distinct files of the real brain set that are one image (resized, re-encoded or re-toned); each pair was looked at.
KNOWN_COPIES = [
    {"1 no.jpeg", "no 1.jpg"},
    {"39 no.jpg", "No11.jpg", "no 7.jpeg"},
    {"50 no.jpg", "7 no.jpg"},
    {"Y113.JPG", "Y59.JPG"},
    {"Y21.jpg", "Y91.jpg"},
    {"Y25.jpg", "Y76.jpg"},
]


def transformed_copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What augmentation and re-publishing do: flips, rotation up to 45 degrees, zoom 0.8-1.2, shift, crop,
    black padding, gamma, contrast and brightness, downscaling and JPEG re-encoding at quality 60-95."""
    height, width = image.shape[:2]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if rng.random() < 0.3:
        image = image[::-1]
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-45, 45), rng.uniform(0.8, 1.2))
    rotation[:, 2] += rng.uniform(-0.1, 0.1, 2) * (width, height)
    image = cv2.warpAffine(np.ascontiguousarray(image), rotation, (width, height), borderMode=cv2.BORDER_CONSTANT)
    top, left = (int(value) for value in rng.integers(0, [max(1, height // 10), max(1, width // 10)]))
    image = image[top : top + int(height * rng.uniform(0.85, 1.0)), left : left + int(width * rng.uniform(0.85, 1.0))]
    image = cv2.copyMakeBorder(
        image, *(int(v) for v in rng.integers(0, min(height, width) // 8, 4)), cv2.BORDER_CONSTANT
    )
    toned = 255 * (image / 255.0) ** rng.uniform(0.7, 1.4) * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20)
    image = cv2.resize(
        np.clip(toned, 0, 255).astype(np.uint8), None, fx=rng.uniform(0.6, 1.0), fy=rng.uniform(0.6, 1.0)
    )
    _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 96))])
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)


def restructured(tmp_path: Path, members: dict[str, bytes], dataset: DatasetSpec) -> Path:
    """The members packed as an archive and restructured by `dataset`'s registry entry into tmp_path/interim."""
    interim = tmp_path / "interim"
    restructure(write_zip(tmp_path / "archive.zip", members), dataset, RestructureSettings(), interim)
    return interim


def grey(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


def textured(seed: int, size: int = 200) -> np.ndarray:
    """A grey image with plenty of distinct corners and blobs: smoothed noise."""
    noise = np.random.default_rng(seed).integers(0, 256, (size // 8, size // 8), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC), (0, 0), 1.5)


def test_mirrored_descriptors_are_those_of_the_mirror_image() -> None:
    """Features.mirrored permutes descriptors instead of detecting again: check it against OpenCV on the mirror."""
    image = textured(1)
    features = matching.image_features(image, 200, 200)
    sift = cv2.SIFT_create()
    keypoints, _ = sift.detectAndCompute(matching.working_grey(image, 200), None)
    keypoints = sorted(keypoints, key=lambda point: -point.response)[:200]
    width = image.shape[1]
    flipped = [
        cv2.KeyPoint(width - 1 - p.pt[0], p.pt[1], p.size, (180 - p.angle) % 360, p.response, p.octave)
        for p in keypoints
    ]
    _, on_mirror = sift.compute(np.ascontiguousarray(image[:, ::-1]), flipped)
    _, as_is = sift.compute(image, keypoints)
    mirrored = matching.Features(
        np.float32([p.pt for p in keypoints]), as_is.astype(np.uint8), features.size, width
    ).mirror
    error = np.abs(mirrored.descriptors.astype(float) - on_mirror).mean()
    unpermuted = np.abs(as_is - on_mirror).mean()
    assert error < 5 < 15 < unpermuted, (error, unpermuted)
    assert np.allclose(mirrored.points[:, 0], [p.pt[0] for p in flipped], atol=1e-3)


def test_flipped_rotated_copies_match_and_other_images_do_not() -> None:
    rng = np.random.default_rng(0)
    images = [textured(seed) for seed in range(6)]
    copies = [transformed_copy(image, rng) for image in images]
    features = [matching.image_features(image) for image in images + copies]
    pairs = {(first, second) for first, second, _ in matching.keypoint_copy_pairs(features, 20)}
    assert pairs == {(index, index + 6) for index in range(6)}


@real
def test_copies_of_real_images_are_found_and_distinct_real_images_are_not_joined() -> None:
    """Recall on copies with known transformations; false pairs measured among 140 distinct real images."""
    paths = sorted(BCCD.glob("*.jpg"))[::18][:20] + sorted(BRAIN.glob("*/*")) + sorted(COVID.glob("*/*.png"))
    rng = np.random.default_rng(0)
    images: list[np.ndarray] = []
    source: list[str] = []
    for path in paths:
        known = next((min(group) for group in KNOWN_COPIES if path.name in group), None)
        identity = known or file_digest(path)  # identical files are one image
        original = grey(path)
        images += [original] + [transformed_copy(original, rng) for _ in range(3)]
        source += [identity] * 4
    features = matching.features_of(
        len(images), images.__getitem__, matching.QUERY_SIZE, matching.QUERY_FEATURES, "test"
    )
    found = {(first, second) for first, second, _ in matching.keypoint_copy_pairs(features, 20)}

    siblings = {(a, b) for a, b in itertools.combinations(range(len(images)), 2) if source[a] == source[b]}
    false = found - siblings
    groups = UnionFind(len(images))
    for first, second in found:
        groups.union(first, second)
    grouped = sum(groups.find(a) == groups.find(b) for a, b in siblings) / len(siblings)
    direct = len(found & siblings) / len(siblings)
    print(f"siblings {len(siblings)}: grouped {grouped:.4f}, paired {direct:.4f}; false {len(false)} of {len(found)}")
    assert grouped >= 0.98
    assert direct >= 0.93  # measured 0.954: the rest join their group through another sibling
    assert len(false) <= 0.005 * len(found)


@real
def test_kaggle_augmented_blood_cells_match_their_bccd_originals_with_the_same_label() -> None:
    originals = sorted(BCCD.glob("*.jpg"))
    images = sorted((KAGGLE_BLOOD / "dataset2-master" / "images").glob("*/*/*.jpeg"))
    reference = matching.features_of(
        len(originals), lambda i: grey(originals[i]), matching.REFERENCE_SIZE, matching.REFERENCE_FEATURES, "test"
    )
    queries = matching.features_of(
        len(images), lambda i: grey(images[i]), matching.QUERY_SIZE, matching.QUERY_FEATURES, "test"
    )
    matches = matching.matched_sources(queries, reference, 20)
    with (KAGGLE_BLOOD / "dataset-master" / "labels.csv").open() as handle:
        category = {int(row["Image"]): row["Category"] for row in csv.DictReader(handle)}

    matched, agree = Counter(), Counter()
    for path, (original, _) in zip(images, matches, strict=True):
        split = path.parent.parent.name
        if original >= 0:
            matched[split] += 1
            agree[split] += category.get(int(originals[original].stem.split("_")[-1])) == path.parent.name
    print(f"matched {dict(matched)} of {dict(Counter(p.parent.parent.name for p in images))}, agreeing {dict(agree)}")
    assert matched["TEST_SIMPLE"] == 71 and matched["TEST"] == 40  # every one
    assert sum(matched.values()) >= 225  # of 231, measured 229 (without mirrored keypoints: 153, flips were missed)
    assert agree == matched  # every matched image has its original's labels.csv category
    inliers = sorted(count for _, count in matches)
    assert not [count for count in inliers if 12 <= count < 40]  # copies and non-copies are far apart


@real
def test_a_pooled_resplit_keeps_every_copy_of_a_real_image_in_one_split(
    tmp_path: Path, registry: dict[str, DatasetSpec]
) -> None:
    """Real brain MRIs and their copies spread over Training and Testing, as in the Kaggle archive."""
    rng = np.random.default_rng(1)
    sources = sorted(BRAIN.glob("*/*"))
    members: dict[str, bytes] = {}
    origin: dict[str, str] = {}
    for number, path in enumerate(sources):
        label = "glioma" if path.parent.name == "yes" else "notumor"
        image = cv2.imread(str(path))
        for copy in range(3):
            split = "Training" if (number + copy) % 3 else "Testing"
            picture = image if copy == 0 else transformed_copy(image, rng)
            name = f"{split}/{label}/{number:03d}_{copy}.jpg"
            members[name] = cv2.imencode(".jpg", picture)[1].tobytes()
            known = next((min(group) for group in KNOWN_COPIES if path.name in group), path.name)
            origin[f"{registry['brain_tumor'].split_map[split]}/{label}/{number:03d}_{copy}.jpg"] = known
    interim = restructured(tmp_path, members, registry["brain_tumor"])

    settings = SplitSettings(near_duplicates="keypoints")
    metrics = split_dataset("brain_tumor", settings, interim, tmp_path / "processed", tmp_path / "sheet.png")
    rows = manifest.read_processed(tmp_path / "processed")
    splits_of: dict[str, set[str]] = {}
    for row in rows:
        splits_of.setdefault(origin[row.interim_path], set()).add(row.split)
    assert [name for name, splits in splits_of.items() if len(splits) > 1] == []
    assert metrics["copy_overlap"]["new"] == 0
    assert metrics["copy_overlap"]["original"] >= 70  # of 80 sources, every one has copies in both archive splits
    assert metrics["oversized_groups"] >= 0 and len(metrics["oversized_group_examples"]) <= 10


# Frames of one smear at overlapping positions: distinct files of the BCCD set that are one source (looked at).
BCCD_SHIFTED_VIEWS = [
    {"BloodImage_00233", "BloodImage_00254"},
    {"BloodImage_00232", "BloodImage_00255"},
    {"BloodImage_00242", "BloodImage_00249"},  # found by the matcher in this test; the same two neutrophils, moved
]


@real
def test_copies_of_real_smears_stay_whole_however_many_with_no_false_pair(
    tmp_path: Path, registry: dict[str, DatasetSpec]
) -> None:
    """Kaggle's blood-cell set in miniature: 56 real BCCD frames (three pairs of them overlapping views of one
    smear) each with 10 rotated, flipped, zoomed, shifted, re-toned 320x240 copies spread over TRAIN and TEST:
    no frame's copies in two splits, every verified pair in one split, and no pair joins two frames except
    overlapping views of one smear. The old cap (10 % of the smallest label: 15 images) split the 22 images of
    two views apart, one pair in two splits."""
    frames = sorted(BCCD.glob("*.jpg"))
    chosen = sorted(
        {frames[index * len(frames) // 52] for index in range(52)}
        | {BCCD / f"{n}.jpg" for pair in BCCD_SHIFTED_VIEWS for n in pair}
    )
    rng = np.random.default_rng(2)
    members, origin = {}, {}
    prefix = "dataset2-master/dataset2-master/images"
    for number, path in enumerate(chosen):
        label = ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")[number % 4]
        image = cv2.imread(str(path))
        for copy in range(11):
            split = "TEST" if (number + copy) % 4 == 0 else "TRAIN"
            picture = cv2.resize(image if copy == 0 else transformed_copy(image, rng), (320, 240))
            name = f"{split}/{label}/_{number}_{copy}.jpeg"
            members[f"{prefix}/{name}"] = cv2.imencode(".jpg", picture)[1].tobytes()
            origin[f"{split.lower()}/{label}/_{number}_{copy}.jpeg"] = path.stem
    interim = restructured(tmp_path, members, registry["blood_cells"])

    settings = SplitSettings(near_duplicates="keypoints")
    result = write_split(settings, "blood_cells", interim, tmp_path / "processed")
    sources = [origin[row.path] for row in result.rows]
    views = [(first, second) for first, second, _ in result.copies.pairs if sources[first] != sources[second]]
    false = [(sources[first], sources[second]) for first, second in views]
    assert [pair for pair in false if set(pair) not in BCCD_SHIFTED_VIEWS] == []
    splits_of: dict[str, set[str]] = {}
    for row in result.processed:
        splits_of.setdefault(origin[row.interim_path], set()).add(row.split)
    assert len(splits_of) == 56 and [name for name, splits in splits_of.items() if len(splits) > 1] == []
    split_of = {row.interim_path: row.split for row in result.processed}
    apart = [
        (a, b) for a, b, _ in result.copies.pairs if split_of[result.rows[a].path] != split_of[result.rows[b].path]
    ]
    assert apart == []  # every verified pair in one split, views of one smear included
    assert result.oversized == []  # 14 folds, a label's 154 images: 11 a fold, and no group holds more of one label
