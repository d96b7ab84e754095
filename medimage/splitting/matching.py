"""Find copies of an image among other images: rotated, flipped, zoomed, shifted, cropped, padded, re-toned, re-encoded.

SIFT keypoints at a fixed working size; candidates by the votes of approximate nearest neighbours (FLANN KD-trees)
among all reference descriptors; every candidate verified by a RANSAC-fitted affine transform between the two
images' ratio-tested matches. A pair is a copy when at least `min_inliers` matches agree on one non-degenerate
transform: two patients' images of the same anatomy share textures, not dozens of keypoints in one arrangement.
Measured in tests/test_matching.py: Kaggle's augmented blood cells match their BCCD originals (229 of 231, every
one with its original's label, none scoring 12-39 inliers); copies made of 140 real images are grouped with
recall 0.995 and no false pair at 20 inliers.

SIFT rather than ORB: on the same BCCD originals ORB (1,500 features) matched 129 of 231, SIFT 153 before
mirrored keypoints were added, 229 after.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

import cv2
import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from medimage.splitting.assignment import UnionFind
from medimage.threads import image_threads

R = TypeVar("R")

QUERY_SIZE = 160  # longest side, pixels, at which an image's keypoints are found
QUERY_FEATURES = 150
REFERENCE_SIZE = 320  # originals: larger and with more keypoints, since a copy may show only part of one
REFERENCE_FEATURES = 1000
INDEXED_FEATURES = 64  # strongest keypoints per image that vote for candidates (all of them verify)
NEIGHBOURS = 4  # nearest reference descriptors per query descriptor; each votes for its image once
MIN_VOTES = 3  # a candidate needs at least this many voting descriptors before it is verified
RATIO = 0.8  # Lowe's ratio test for a descriptor match
REPROJECTION = 0.02  # RANSAC inlier distance, as a fraction of the reference image's longest side
SCALE_LIMITS = (0.2, 5.0)  # an affine map that scales any axis beyond these is not a copy (degenerate fit)
MIRRORED_BINS = [(-bin) % 8 for bin in range(8)]


@dataclass(frozen=True)
class Features:
    """Keypoints of one image, strongest first: positions (n, 2) and raw SIFT descriptors (n, 128) as uint8."""

    points: np.ndarray
    descriptors: np.ndarray
    size: int  # the longest side the keypoints were found at
    width: int  # of the working image, for mirroring

    @cached_property
    def mirror(self) -> Features:
        """The keypoints of the left-right mirror image, without detecting again: SIFT is not mirror-invariant, but
        mirroring a keypoint reverses the rows of its 4x4 cell grid and negates its 8 orientation bins (checked
        against descriptors computed on a mirrored image in tests/test_matching.py). An upside-down flip is this
        and a half turn, which SIFT already absorbs."""
        cells = self.descriptors.reshape(-1, 4, 4, 8)[:, ::-1][..., MIRRORED_BINS]
        points = self.points.copy()
        points[:, 0] = self.width - 1 - points[:, 0]
        return Features(points, np.ascontiguousarray(cells.reshape(-1, 128)), self.size, self.width)

    @cached_property
    def root_sift(self) -> np.ndarray:
        """RootSIFT (Arandjelovic and Zisserman, 2012): unit vectors whose L2 distance is the Hellinger distance of
        the descriptors, so that a dot product ranks matches."""
        raw = self.descriptors.astype(np.float32)
        return np.sqrt(raw / np.maximum(raw.sum(axis=1, keepdims=True), 1e-7))


def working_grey(grey: np.ndarray, size: int) -> np.ndarray:
    """The image shrunk (never enlarged) so that its longest side is at most `size`."""
    scale = size / max(grey.shape[:2])
    if scale >= 1:
        return grey
    return cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def image_features(grey: np.ndarray, size: int = QUERY_SIZE, count: int = QUERY_FEATURES) -> Features:
    """SIFT keypoints of a grey uint8 image at working size `size`, at most `count` of them, strongest first."""
    small = working_grey(grey, size)
    detector = cv2.SIFT_create(nfeatures=count, contrastThreshold=0.01)  # low-contrast stains and scans need it
    keypoints, descriptors = detector.detectAndCompute(small, None)
    if descriptors is None or not keypoints:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8), max(small.shape), small.shape[1])
    order = sorted(range(len(keypoints)), key=lambda index: (-keypoints[index].response, index))[:count]
    points = np.array([keypoints[index].pt for index in order], np.float32)
    return Features(points, np.clip(descriptors[order], 0, 255).astype(np.uint8), max(small.shape), small.shape[1])


def inliers(query: Features, reference: Features, enough: int) -> int:
    """How many matches agree on one affine map from `query`, or else its mirror image, onto `reference`.

    The mirror image is tried only when the image as it is gives fewer than `enough`.
    """
    as_is = _inliers_as_is(query, reference)
    return as_is if as_is >= enough else max(as_is, _inliers_as_is(query.mirror, reference))


def _ratio_tested(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(query rows, reference rows) of the matches that pass Lowe's ratio test, by a product of unit vectors:
    the squared distance is 2 - 2 x similarity, so d1 < RATIO x d2 reads 1 - s1 < RATIO^2 x (1 - s2)."""
    similarity = query @ reference.T
    rows = np.arange(len(query))
    best = similarity.argmax(axis=1)
    first = similarity[rows, best]
    similarity[rows, best] = -np.inf
    second = similarity.max(axis=1)
    good = (1 - first) < RATIO**2 * (1 - second)
    return rows[good], best[good]


def _inliers_as_is(query: Features, reference: Features) -> int:
    """How many ratio-tested matches agree on one affine map from `query` onto `reference` (0 when none fits)."""
    if len(query.descriptors) < 3 or len(reference.descriptors) < 2:
        return 0
    query_rows, reference_rows = _ratio_tested(query.root_sift, reference.root_sift)
    if len(query_rows) < 3:
        return 0
    transform, mask = cv2.estimateAffine2D(
        query.points[query_rows],
        reference.points[reference_rows],
        method=cv2.RANSAC,
        ransacReprojThreshold=REPROJECTION * reference.size,
        maxIters=2000,
    )
    if transform is None or mask is None or not np.isfinite(transform).all():
        return 0
    scales = np.linalg.svd(transform[:, :2], compute_uv=False)
    if scales.min() < SCALE_LIMITS[0] or scales.max() > SCALE_LIMITS[1]:
        return 0
    return int(mask.sum())


class CandidateIndex:
    """Approximate nearest neighbours over the strongest descriptors of many images, for voting."""

    def __init__(self, features: Sequence[Features]) -> None:
        vectors = [item.root_sift[:INDEXED_FEATURES] for item in features]
        self.owner = np.concatenate([np.full(len(block), image) for image, block in enumerate(vectors)] + [[]])
        self.owner = self.owner.astype(np.int64)
        data = np.concatenate(vectors) if vectors else np.zeros((0, 128), np.float32)
        self.index = None  # too few keypoints in all (tiny or blank images): no candidates, no copies
        if len(data) >= NEIGHBOURS:
            cv2.setRNGSeed(0)  # the KD-trees' random splits, and so the candidates, are the same on every run
            self.index = cv2.flann_Index(np.ascontiguousarray(data), {"algorithm": 1, "trees": 4})

    def candidates(self, query: Features, limit: int, exclude: int = -1) -> list[int]:
        """Up to `limit` images with the most votes from `query`'s strongest descriptors (ties: lower index)."""
        if self.index is None or not len(query.descriptors):
            return []
        both = np.concatenate([query.root_sift[:INDEXED_FEATURES], query.mirror.root_sift[:INDEXED_FEATURES]])
        neighbours, _ = self.index.knnSearch(both, NEIGHBOURS, params={"checks": 32})
        owners = self.owner[neighbours]
        votes: dict[int, int] = {}
        for row in owners.tolist():
            for image in set(row):
                if image != exclude:
                    votes[image] = votes.get(image, 0) + 1
        ranked = sorted((image for image, count in votes.items() if count >= MIN_VOTES), key=lambda i: (-votes[i], i))
        return ranked[:limit]


# --------------------------------------------------------------------------- parallel map over images


def parallel_map(function: Callable[[int], R], count: int, what: str, workers: int | None = None) -> list[R]:
    """[function(0), ..., function(count - 1)] on `workers` threads, in order, with a progress bar.

    Threads, one per core (medimage.threads), not processes: SIFT, matching, RANSAC and FLANN release the GIL,
    and a process forked after OpenCV has started its own thread pool can hang. OpenCV's and BLAS's pools are held
    to one thread meanwhile (a matrix product spread over all cores, on every thread at once, was slower than one
    core).
    """
    workers = workers or image_threads()
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with threadpool_limits(1), ThreadPoolExecutor(max_workers=workers) as pool:
            results = pool.map(function, range(count))
            return list(tqdm(results, total=count, desc=what, unit="img", disable=None, leave=False))
    finally:
        cv2.setNumThreads(previous)


def features_of(count: int, read: Callable[[int], np.ndarray], size: int, keypoints: int, what: str) -> list[Features]:
    """Features of images 0..count-1, each read (grey uint8) by `read`, on every core."""
    return parallel_map(lambda index: image_features(read(index), size, keypoints), count, what)


# --------------------------------------------------------------------------- the two searches


def matched_sources(
    images: Sequence[Features], originals: Sequence[Features], min_inliers: int, candidates: int = 4
) -> list[tuple[int, int]]:
    """For each image, (the original it was made from or -1, the verified inliers of that match).

    Candidates are verified in order of votes and the first that verifies is taken: an image has one original
    (originals that copy each other are joined later), and the most-voted candidate is nearly always it.
    """
    index = CandidateIndex(originals)

    def first_verified(image: int) -> tuple[int, int]:
        best = 0
        for original in index.candidates(images[image], candidates):
            count = inliers(images[image], originals[original], min_inliers)
            if count >= min_inliers:
                return original, count
            best = max(best, count)
        return -1, best

    return parallel_map(first_verified, len(images), "matching originals")


def keypoint_copy_pairs(
    images: Sequence[Features], min_inliers: int, candidates: int = 6
) -> list[tuple[int, int, int]]:
    """(i, j, inliers) with i < j for every pair of images where one is a verified copy of the other."""
    index = CandidateIndex(images)

    def pairs_of(image: int) -> list[tuple[int, int, int]]:
        found = []
        for other in index.candidates(images[image], candidates, exclude=image):
            count = inliers(images[image], images[other], min_inliers)
            if count >= min_inliers:
                found.append((min(image, other), max(image, other), count))
        return found

    best: dict[tuple[int, int], int] = {}
    for found in parallel_map(pairs_of, len(images), "searching copies"):
        for first, second, count in found:
            best[first, second] = max(count, best.get((first, second), 0))
    return sorted((first, second, count) for (first, second), count in best.items())


@dataclass(frozen=True)
class Copies:
    """Pairs of images to keep in one split, and how many images matched an original (None: no originals)."""

    pairs: list[tuple[int, int, int]]  # (i, j, inliers) with i < j
    matched: int | None


def copies_among(images: Sequence[Features], originals: Sequence[Features], min_inliers: int) -> Copies:
    """The images made from one original, chained as pairs (originals that copy each other count as one), plus
    the copies among the images that match no original. Without originals: the copies among all images."""
    if not originals:
        return Copies(keypoint_copy_pairs(images, min_inliers), None)
    alike = UnionFind(len(originals))
    for first, second, _ in keypoint_copy_pairs(originals, min_inliers):
        alike.union(first, second)
    pairs = []
    previous: dict[int, tuple[int, int]] = {}  # original group -> (its last image so far, that match's inliers)
    unmatched = []
    for image, (original, count) in enumerate(matched_sources(images, originals, min_inliers)):
        if original < 0:
            unmatched.append(image)
            continue
        group = alike.find(original)
        if group in previous:
            pairs.append((previous[group][0], image, min(count, previous[group][1])))
        previous[group] = (image, count)
    among = keypoint_copy_pairs([images[image] for image in unmatched], min_inliers)
    pairs += [(unmatched[first], unmatched[second], count) for first, second, count in among]
    return Copies(sorted(pairs), len(images) - len(unmatched))
