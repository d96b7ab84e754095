"""Both loaders read the same pixels in the same class order; ours stays within a batch of memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from medimage.errors import PipelineError
from medimage.manifest import ProcessedRow, write_manifest
from medimage.modelling import opencv_loader


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


def test_opencv_batches_decode_once_and_read_later_epochs_from_their_disk_cache(tmp_path: Path) -> None:
    from medimage.modelling.keras_loader import OpenCVBatches
    from medimage.settings.train import TrainSettings

    folder = processed_folder(tmp_path / "processed", 6, [(40, 50), (70, 30)])
    names = opencv_loader.class_names(folder)
    settings = TrainSettings(image_size=32, batch_size=4, loader="opencv")
    batches = OpenCVBatches(
        opencv_loader.image_set(folder, "train", names), settings, shuffle=True, cache_file=tmp_path / "train.npy"
    )
    first = {}
    for index in range(len(batches)):
        pixels, labels = batches[index]
        for position, row in enumerate(batches.order[index * 4 : index * 4 + 4]):
            first[int(row)] = (pixels[position], labels[position])
    batches.on_epoch_end()
    for path in (folder / "train").rglob("*.*"):
        path.unlink()  # a second epoch that decoded again would fail now
    for index in range(len(batches)):
        pixels, labels = batches[index]
        for position, row in enumerate(batches.order[index * 4 : index * 4 + 4]):
            assert labels[position] == first[int(row)][1]
            assert np.abs(pixels[position] - first[int(row)][0]).max() <= 0.5  # uint8 cache: rounding only
    assert (tmp_path / "train.npy").stat().st_size >= 12 * 32 * 32 * 3


def test_every_format_restructure_keeps_reaches_both_loaders_with_the_same_pixels(tmp_path: Path) -> None:
    """TIFF, WEBP, BMP, 16-bit PNG beside JPEG: Keras' directory loader lists none of .tif/.webp (and TensorFlow
    cannot decode TIFF), so the keras loader reads such a folder through OpenCV, in the same pipeline."""
    from medimage.modelling.keras_loader import split_folder
    from medimage.settings.train import TrainSettings

    rng = np.random.default_rng(1)
    written = []
    for label in ("a", "b"):
        for suffix in (".tif", ".webp", ".bmp", ".png", ".jpg"):
            path = tmp_path / "train" / label / f"img{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            image = smooth_image(rng, 70, 90, grey=False)
            if suffix == ".png":
                image = image.astype(np.uint16) * 257  # 16 bits a sample
            parameters = [cv2.IMWRITE_WEBP_QUALITY, 101] if suffix == ".webp" else []  # 101: lossless
            assert cv2.imwrite(str(path), image, parameters)
            written.append(path)
    dataset = split_folder(tmp_path / "train", ["a", "b"], TrainSettings(image_size=48), batch_size=None)
    assert sorted(Path(path) for path in dataset.file_paths) == sorted(written)
    for (pixels, label), path in zip(dataset, dataset.file_paths, strict=True):
        ours = opencv_loader.load_image(Path(path), None, 48)
        assert int(label) == ["a", "b"].index(Path(path).parent.name)
        assert pixels.shape == ours.shape == (48, 48, 3)
        assert np.abs(pixels.numpy() - ours).mean() < 1.0, path
