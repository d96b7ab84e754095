"""The training-size pixels of every split, made once (stage `pixels`) and read by both loaders, train and evaluate.

Each split is one uint8 array, images x size x size x 3 (RGB), in NumPy's .npy format under data/pixels/<ds>/,
in the order of the processed manifest's rows of that split; pixels.json says which images, at which size. The
arrays are never loaded: a batch reads its rows (`pixel_rows`) through the page cache. DVC caches the folder keyed by
the manifest and train.image_size, so changing the learning rate, the epochs, the model or the augmentation reuses
it. The rule is the OpenCV loader's (`opencv_loader.load_image`): libjpeg's reduced-scale decoding where the
image is at least twice the size, then OpenCV's bilinear resize on 8 bits, BGR to RGB. Augmentation stays in the
model, on the fly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from medimage import manifest
from medimage.errors import PipelineError
from medimage.modelling.opencv_loader import ImageSet, image_set, load_rgb
from medimage.modelling.pixel_rows import PixelRows, write_rows
from medimage.paths import PIXELS_DIR, PROCESSED_DIR
from medimage.settings.split import SPLIT_NAMES
from medimage.threads import image_threads

INDEX = "pixels.json"
CHUNK = 256  # images decoded ahead of the writer


def images_key(paths: Sequence[str], hashes: Sequence[str]) -> str:
    """What a split's array holds, as one hash: its images' paths and contents, in order."""
    digest = hashlib.sha256()
    for path, content in zip(paths, hashes, strict=True):
        digest.update(f"{path}\t{content}\n".encode())
    return digest.hexdigest()


def split_key(rows: Sequence[manifest.ProcessedRow]) -> str:
    return images_key([row.path for row in rows], [row.sha256 for row in rows])


def make_pixels(processed: Path, rows: Sequence[manifest.ProcessedRow], size: int, folder: Path) -> dict:
    """Write each split's array and pixels.json into `folder` (an empty staging folder); return the index."""
    index: dict = {"image_size": size, "colour": "rgb", "splits": {}}
    for split in SPLIT_NAMES:
        chosen = [row for row in rows if row.split == split]
        write_split(processed, chosen, size, folder / f"{split}.npy")
        index["splits"][split] = {"images": len(chosen), "key": split_key(chosen)}
    (folder / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return index


def write_split(processed: Path, rows: Sequence[manifest.ProcessedRow], size: int, destination: Path) -> None:
    """One split's images, decoded on a thread per core (decoding releases the GIL), written in order."""
    with (
        ThreadPoolExecutor(image_threads()) as pool,
        tqdm(total=len(rows), desc=f"pixels {destination.stem}", unit="img", disable=None, leave=False) as progress,
    ):

        def decoded() -> Iterator[np.ndarray]:
            for start in range(0, len(rows), CHUNK):  # a chunk at a time: memory holds CHUNK images, not the split
                part = rows[start : start + CHUNK]
                yield from pool.map(lambda row: load_rgb(processed / row.path, row.size, size), part)
                progress.update(len(part))

        write_rows(destination, len(rows), size, decoded())


def with_pixels(
    images: ImageSet, rows: Sequence[manifest.ProcessedRow], folder: Path, split: str, size: int
) -> ImageSet:
    """`images` (split `split` of `rows`) with their prepared pixels, read a row at a time; PipelineError where
    the folder was made for other images or another size."""
    index_file = folder / INDEX
    if not index_file.is_file():
        raise PipelineError(f"{folder} has no {INDEX}: run dvc repro pixels@{folder.name}")
    index = json.loads(index_file.read_text())
    made = index["splits"].get(split, {})
    if index["image_size"] != size or made.get("key") != split_key([row for row in rows if row.split == split]):
        raise PipelineError(
            f"{folder} was made for other images or another size ({index['image_size']} px) than split {split} at "
            f"{size} px: run dvc repro pixels@{folder.name}"
        )
    return replace(images, pixels=PixelRows(folder / f"{split}.npy"))


def prepared_sets(
    dataset: str, rows: Sequence[manifest.ProcessedRow], names: list[str], size: int, splits: Sequence[str]
) -> list[ImageSet]:
    """The dataset's `splits` (of its processed manifest's `rows`) with their prepared pixels."""
    processed, folder = PROCESSED_DIR / dataset, PIXELS_DIR / dataset
    return [with_pixels(image_set(processed, split, names, rows), rows, folder, split, size) for split in splits]
