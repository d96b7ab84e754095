"""Both loaders read the same prepared pixels in the same class order; ours stays within a batch of memory."""

from __future__ import annotations

import tracemalloc
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from medimage.errors import PipelineError
from medimage.manifest import ProcessedRow, class_names, read_processed, write_manifest
from medimage.modelling import opencv_loader
from medimage.modelling.prepared import make_pixels, with_pixels


def smooth_image(rng: np.random.Generator, height: int, width: int, grey: bool) -> np.ndarray:
    """Smooth content, so that resampling differences stay small and the comparison is about decoding."""
    low = rng.uniform(0, 255, (4, 4) if grey else (4, 4, 3)).astype(np.float32)
    return cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def processed_folder(
    root: Path, per_label: int, sizes: list[tuple[int, int]], labels: tuple[str, ...] = ("b_second", "a_first")
) -> Path:
    """A processed dataset as split writes it: <split>/<label>/<file> and manifest.csv."""
    rng = np.random.default_rng(0)
    rows = []
    for label in labels:
        for index in range(per_label):
            height, width = sizes[index % len(sizes)]
            grey = index % 2 == 0
            path = f"train/{label}/img {index}.{'png' if index % 3 == 0 else 'jpg'}"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / path), smooth_image(rng, height, width, grey))
            size = (root / path).stat().st_size
            fields = {"member": path, "sha256": "", "group": "", "bytes": size, "format": "", "interim_path": path}
            rows.append(
                ProcessedRow(
                    path=path,
                    label=label,
                    source_split="train",
                    width=width,
                    height=height,
                    channels=1 if grey else 3,
                    split="train",
                    **fields,
                )
            )
    write_manifest(root, rows, ProcessedRow)
    return root


def test_class_order_comes_from_one_place(tmp_path: Path) -> None:
    folder = processed_folder(tmp_path, 2, [(40, 50)])
    assert opencv_loader.class_names(folder) == ["a_first", "b_second"]
    images = opencv_loader.image_set(folder, "train", opencv_loader.class_names(folder))
    assert {path.parent.name: label for path, label in zip(images.paths, images.labels.tolist(), strict=True)} == {
        "a_first": 0,
        "b_second": 1,
    }


@pytest.mark.parametrize(("sizes", "tolerance"), [([(64, 64), (80, 96)], 3.0), ([(512, 512), (300, 400)], 6.0)])
def test_opencv_and_keras_loaders_give_the_same_pixels(
    tmp_path: Path, sizes: list[tuple[int, int]], tolerance: float
) -> None:
    import keras

    folder = processed_folder(tmp_path, 4, sizes)
    names = opencv_loader.class_names(folder)
    dataset = keras.utils.image_dataset_from_directory(
        folder / "train",
        class_names=names,
        image_size=(64, 64),
        batch_size=None,
        shuffle=False,
        interpolation="bilinear",
        verbose=False,
    )
    images = opencv_loader.image_set(folder, "train", names)
    row_of = {Path(path).resolve(): row for row, path in enumerate(dataset.file_paths)}
    theirs = [(pixels.numpy(), int(label)) for pixels, label in dataset]
    for path, label, size in zip(images.paths, images.labels.tolist(), images.sizes, strict=True):
        expected, expected_label = theirs[row_of[path.resolve()]]
        ours = opencv_loader.load_image(path, size, 64)
        assert ours.shape == expected.shape == (64, 64, 3) and ours.dtype == np.float32
        assert label == expected_label
        assert np.abs(ours - expected).mean() < tolerance, path


def test_batches_cover_every_image_once_in_seeded_order_with_bounded_memory(tmp_path: Path) -> None:
    folder = processed_folder(tmp_path, 40, [(200, 240)])
    images = opencv_loader.image_set(folder, "train", opencv_loader.class_names(folder))
    tracemalloc.start()
    seen = []
    for pixels, labels in opencv_loader.batches(images, 96, batch_size=8, shuffle=True, seed=3):
        assert pixels.shape[1:] == (96, 96, 3) and len(pixels) == len(labels) <= 8
        seen.extend(labels.tolist())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    batch_bytes = 8 * 96 * 96 * 3 * 4
    assert peak < 8 * batch_bytes  # 80 images would be 10 batches' worth: only a few batches are ever alive
    assert sorted(seen) == sorted(images.labels.tolist())
    first = [labels.tolist() for _, labels in opencv_loader.batches(images, 32, 8, shuffle=True, seed=3)]
    again = [labels.tolist() for _, labels in opencv_loader.batches(images, 32, 8, shuffle=True, seed=3)]
    other_epoch = [labels.tolist() for _, labels in opencv_loader.batches(images, 32, 8, shuffle=True, seed=3, epoch=1)]
    assert first == again and first != other_epoch


def test_an_unreadable_image_is_named(tmp_path: Path) -> None:
    folder = processed_folder(tmp_path, 2, [(40, 50)])
    victim = folder / "train" / "a_first" / "img 1.jpg"
    victim.write_bytes(b"corrupted by hand")
    images = opencv_loader.image_set(folder, "train", opencv_loader.class_names(folder))
    with pytest.raises(PipelineError, match=r"cannot decode image .*img 1.jpg.*dvc checkout"):
        list(opencv_loader.batches(images, 32, 4))


def test_legacy_image_data_generator_reads_our_folders_unchanged(tmp_path: Path) -> None:
    """Course notebooks still use ImageDataGenerator().flow_from_directory; our processed layout works with it."""
    import tensorflow as tf

    folder = processed_folder(tmp_path, 5, [(50, 60)])
    flow = tf.keras.preprocessing.image.ImageDataGenerator(rescale=1 / 255).flow_from_directory(
        folder / "train", target_size=(32, 32), batch_size=4, class_mode="sparse", shuffle=False
    )
    assert flow.samples == 10
    assert list(flow.class_indices) == opencv_loader.class_names(folder)
    pixels, labels = next(flow)
    assert pixels.shape == (4, 32, 32, 3) and set(labels.tolist()) <= {0.0, 1.0}


def prepared(folder: Path, pixels: Path, size: int, split: str = "train") -> opencv_loader.ImageSet:
    """The split of a processed folder with its pixels made (the pixels stage's work) and read back."""
    rows = read_processed(folder)
    pixels.mkdir(parents=True, exist_ok=True)
    make_pixels(folder, rows, size, pixels)
    images = opencv_loader.image_set(folder, split, class_names(rows), rows)
    return with_pixels(images, rows, pixels, split, size)


def test_both_loaders_read_the_prepared_pixels_which_are_the_rule_and_open_no_image(tmp_path: Path) -> None:
    from medimage.modelling.keras_loader import OpenCVBatches, prepared_dataset
    from medimage.settings.train import TrainSettings

    folder = processed_folder(tmp_path / "processed", 6, [(40, 50), (300, 280)])
    images = prepared(folder, tmp_path / "pixels", 32)
    assert images.pixels.shape == (12, 32, 32, 3)
    expected = np.stack(
        [opencv_loader.load_image(path, size, 32) for path, size in zip(images.paths, images.sizes, strict=True)]
    )
    assert np.array_equal(np.load(images.pixels.path), expected)  # the rule exactly: decoded, resized, rounded once
    for path in (folder / "train").rglob("*.*"):
        path.unlink()  # a loader that decoded would fail now
    settings = TrainSettings(image_size=32, batch_size=5, loader="opencv")
    batches = OpenCVBatches(images, settings, shuffle=True)
    for index in range(len(batches)):
        pixels, labels = batches[index]
        chosen = batches.order[index * 5 : index * 5 + 5]
        assert np.array_equal(pixels, expected[chosen]) and np.array_equal(labels, images.labels[chosen])
    seen = []
    for pixels, labels in prepared_dataset(images, settings, shuffle=True):
        rows = [int(np.flatnonzero((expected == one).all(axis=(1, 2, 3)))[0]) for one in pixels.numpy()]
        assert labels.numpy().tolist() == images.labels[rows].tolist()
        seen += rows
    assert sorted(seen) == list(range(12)) and seen != list(range(12))  # every image once, reshuffled
    in_order = np.concatenate([pixels.numpy() for pixels, _ in prepared_dataset(images, settings, shuffle=False)])
    assert np.array_equal(in_order, expected)


def test_pixels_made_for_other_images_or_another_size_are_refused(tmp_path: Path) -> None:
    folder = processed_folder(tmp_path / "processed", 3, [(40, 50)])
    prepared(folder, tmp_path / "pixels", 32)
    rows = read_processed(folder)
    images = opencv_loader.image_set(folder, "train", class_names(rows), rows)
    with pytest.raises(PipelineError, match=r"another size .*dvc repro pixels@pixels"):
        with_pixels(images, rows, tmp_path / "pixels", "train", 48)
    other = [replace(row, sha256="0" * 64) if n == 0 else row for n, row in enumerate(rows)]
    with pytest.raises(PipelineError, match="other images"):
        with_pixels(images, other, tmp_path / "pixels", "train", 32)
    assert with_pixels(images, rows, tmp_path / "pixels", "val", 32).pixels.shape == (0, 32, 32, 3)
    (tmp_path / "pixels" / "train.npy").write_bytes((tmp_path / "pixels" / "train.npy").read_bytes()[:-10])
    truncated = with_pixels(images, rows, tmp_path / "pixels", "train", 32).pixels
    assert len(truncated.rows(np.arange(len(truncated) - 1))) == len(truncated) - 1  # whole rows read
    with pytest.raises(OSError, match="shorter than its header"):
        truncated.rows(np.array([len(truncated) - 1]))


def test_every_format_restructure_keeps_is_prepared_by_the_same_rule(tmp_path: Path) -> None:
    """TIFF, WEBP, BMP, 16-bit PNG beside JPEG: Keras' directory loader lists none of .tif/.webp (and TensorFlow
    cannot decode TIFF); the pixels stage decodes them all with OpenCV, so every loader trains on them."""
    rng = np.random.default_rng(1)
    rows = []
    for label in ("a", "b"):
        for suffix in (".tif", ".webp", ".bmp", ".png", ".jpg"):
            path = f"train/{label}/img{suffix}"
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            image = smooth_image(rng, 70, 90, grey=False)
            if suffix == ".png":
                image = image.astype(np.uint16) * 257  # 16 bits a sample
            parameters = [cv2.IMWRITE_WEBP_QUALITY, 101] if suffix == ".webp" else []  # 101: lossless
            assert cv2.imwrite(str(tmp_path / path), image, parameters)
            fields = {"member": path, "sha256": suffix, "group": "", "bytes": 1, "format": "", "interim_path": path}
            rows.append(
                ProcessedRow(
                    path=path,
                    label=label,
                    source_split="train",
                    width=90,
                    height=70,
                    channels=3,
                    split="train",
                    **fields,
                )
            )
    write_manifest(tmp_path, rows, ProcessedRow)
    images = prepared(tmp_path, tmp_path / "pixels", 48)
    for pixels, path in zip(np.load(images.pixels.path), images.paths, strict=True):
        assert np.array_equal(pixels, opencv_loader.load_image(path, (90, 70), 48)), path
        assert pixels.std() > 5  # a picture, not a blank


READ_EVERY_ROW = """
import sys
from pathlib import Path

import numpy as np

from medimage.modelling import keras_loader
from medimage.modelling.opencv_loader import ImageSet
from medimage.modelling.pixel_rows import PixelRows
from medimage.settings.train import TrainSettings


def peak_mb() -> float:
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


pixels = PixelRows(Path(sys.argv[1]))
count = len(pixels)
images = ImageSet([Path("unused")] * count, np.zeros(count, np.int64), [(1, 1)] * count, ["a"], [""] * count, pixels)
settings = TrainSettings(image_size=pixels.shape[1], batch_size=64)
before = peak_mb()
read = 0
for loader in ("keras", "opencv"):
    data = keras_loader.data_for(images, settings.model_copy(update={"loader": loader}), shuffle=True)
    for batch in data if loader == "keras" else (data[index] for index in range(len(data))):
        read += len(batch[0])
print(read, round(peak_mb() - before))
"""


def test_reading_every_prepared_row_keeps_memory_at_a_few_batches(tmp_path: Path) -> None:
    """A sparse 1.4 GB file of 9,600 images at 224 px, read by both loaders: a memory map would hold every page it
    touched (1.4 GB more resident memory); rows read into the batch's buffer hold a few batches."""
    import subprocess
    import sys

    path = tmp_path / "train.npy"
    with path.open("wb") as out:  # the header of 9,600 images, then a hole where their pixels would be
        header = {"descr": "|u1", "fortran_order": False, "shape": (9600, 224, 224, 3)}
        np.lib.format.write_array_header_1_0(out, header)
        out.truncate(out.tell() + 9600 * 224 * 224 * 3)
    result = subprocess.run(
        [sys.executable, "-c", READ_EVERY_ROW, str(path)], capture_output=True, text=True, check=True, timeout=300
    )
    read, grown_mb = map(int, result.stdout.split()[-2:])
    assert read == 2 * 9600
    assert grown_mb < 400, f"peak resident memory grew {grown_mb} MB reading 1,445 MB of pixels"
