"""Remember the costly part of finding copies: each image's keypoints by its sha256, and the pairs found among a
set of images, so that a re-split of the same images (another seed, other ratios) searches nothing again, and
an archive with a few new images computes keypoints for those only.

Local and disposable (`.cache/split/`, git-ignored, not a DVC output): delete it at any time. Every entry is keyed
by the image bytes and by the code that made it (the sources of the modules below and OpenCV's version), so an
edit of the matcher or another OpenCV misses the cache instead of returning stale results; nothing in it changes
what split writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from medimage import decoding
from medimage.atomic import atomic_file, write_json
from medimage.splitting import features, matching

CACHE_DIR = Path(".cache/split")


def code_key() -> str:
    """What the cached results depend on besides the images: the sources of the matcher, the image reading and
    this module, and OpenCV's version (SIFT's output can change between releases)."""
    digest = hashlib.sha256(cv2.__version__.encode())
    for source in (matching.__file__, features.__file__, decoding.__file__, __file__):
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:16]


def _keypoint_file(folder: Path, sha256: str) -> Path:
    return folder / sha256[:2] / f"{sha256}.npz"


def _load(path: Path) -> matching.Features | None:
    try:
        with np.load(path) as stored:
            shape = stored["shape"].tolist()
            return matching.Features(stored["points"], stored["descriptors"], int(shape[0]), int(shape[1]))
    except (OSError, ValueError, KeyError):  # absent, or cut short by a crash: compute it again
        return None


def _save(path: Path, found: matching.Features) -> None:
    with atomic_file(path) as temporary, temporary.open("wb") as handle:
        np.savez(handle, points=found.points, descriptors=found.descriptors, shape=np.array([found.size, found.width]))


def cached_features(
    cache: Path | None,
    digests: Sequence[str],
    size: int,
    count: int,
    compute: Callable[[list[int]], list[matching.Features]],
) -> list[matching.Features]:
    """Features of the images with these sha256 digests: loaded where cached, else `compute(indices)` and saved."""
    if cache is None:
        return compute(list(range(len(digests))))
    folder = cache / f"keypoints-{code_key()}-{size}-{count}"
    found: list[matching.Features | None] = [_load(_keypoint_file(folder, digest)) for digest in digests]
    missing = [index for index, item in enumerate(found) if item is None]
    for index, item in zip(missing, compute(missing) if missing else [], strict=True):
        _save(_keypoint_file(folder, digests[index]), item)
        found[index] = item
    return [item for item in found if item is not None]


def cached_copies(cache: Path | None, key: Sequence[str], compute: Callable[[], matching.Copies]) -> matching.Copies:
    """The copies found among the images `key` names (their digests in order, and the settings that matter):
    loaded where this exact search ran before, else `compute()` and saved."""
    if cache is None:
        return compute()
    digest = hashlib.sha256("\n".join([code_key(), *key]).encode()).hexdigest()
    path = cache / "copies" / f"{digest}.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        return matching.Copies([tuple(pair) for pair in stored["pairs"]], stored["matched"])
    except (OSError, ValueError, KeyError):
        copies = compute()
        write_json(path, {"pairs": [list(pair) for pair in copies.pairs], "matched": copies.matched})
        return copies
