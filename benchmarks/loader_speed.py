"""Loader throughput: decode + resize to 224 + batches of 32, over the same 2,000 JPEGs of 512x512.

    python -m benchmarks.loader_speed [--repeat 3]

Compares our OpenCV loader (2 threads, reduced JPEG decoding) with Keras' image_dataset_from_directory
(prefetch, no cache) and the legacy ImageDataGenerator.flow_from_directory; then both of ours and Keras' on one
thread, the per-core rate that says how many cores keep a GPU fed (docs/scaling.md). The images are generated once
into .benchmarks-cache/loaders/ (git-ignored). One full pass each, medians; ratios against Keras.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import arguments, median_seconds
from medimage import manifest
from medimage.manifest import ProcessedRow
from medimage.modelling import opencv_loader

FOLDER = Path(".benchmarks-cache/loaders")
COUNT, SIDE, TARGET, BATCH = 2000, 512, 224, 32
LABELS = ("a", "b")


def images() -> Path:
    return generate(FOLDER, COUNT, seed=0, size=lambda rng: (SIDE, SIDE), channels=3, noise=12)


def generate(
    folder: Path,
    count: int,
    seed: int,
    size: Callable[[np.random.Generator], tuple[int, int]],
    channels: int,
    noise: float,
) -> Path:
    """`count` smooth, noisy JPEGs over LABELS under folder/train/, once; (height, width) of each from `size`."""
    if (folder / "manifest.csv").is_file():
        return folder
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        label = LABELS[index % 2]
        path = f"train/{label}/{index:05d}.jpg"
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        height, width = size(rng)
        coarse = rng.uniform(0, 255, (8, 8, channels) if channels > 1 else (8, 8)).astype(np.float32)
        picture = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        picture += rng.normal(0, noise, picture.shape).astype(np.float32)
        cv2.imwrite(str(folder / path), picture.clip(0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
        rows.append(
            ProcessedRow(
                path=path,
                label=label,
                source_split="train",
                member=path,
                sha256="",
                width=width,
                height=height,
                group="",
                channels=channels,
                bytes=(folder / path).stat().st_size,
                format="JPEG",
                interim_path=path,
                split="train",
            )
        )
    manifest.write_manifest(folder, rows, ProcessedRow)  # written last: a folder with a manifest is complete
    return folder


def opencv_pass(folder: Path, labels: tuple[str, ...] = LABELS, threads: int = 2) -> int:
    images = opencv_loader.image_set(folder, "train", list(labels))
    return sum(len(batch) for batch, _ in opencv_loader.batches(images, TARGET, BATCH, threads=threads))


def keras_pass(folder: Path, labels: tuple[str, ...] = LABELS, threads: int | None = None) -> int:
    """One pass of tf.data; with `threads`, its private thread pool has that many threads (None: TensorFlow's)."""
    import keras
    import tensorflow as tf

    dataset = keras.utils.image_dataset_from_directory(
        folder / "train",
        class_names=list(labels),
        image_size=(TARGET, TARGET),
        batch_size=BATCH,
        shuffle=False,
        verbose=False,
    ).prefetch(tf.data.AUTOTUNE)
    if threads is not None:
        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
        dataset = dataset.with_options(options)
    return sum(int(batch.shape[0]) for batch, _ in dataset)


def make_pixels_pass(folder: Path, out: Path) -> None:
    """What the pixels stage does: every image decoded, resized to 224 and written once, on a thread per core."""
    from medimage.modelling.prepared import make_pixels

    make_pixels(folder, manifest.read_processed(folder), TARGET, out)


def prepared_images(folder: Path, pixels: Path) -> opencv_loader.ImageSet:
    from medimage.modelling.prepared import with_pixels

    rows = manifest.read_processed(folder)
    return with_pixels(opencv_loader.image_set(folder, "train", list(LABELS), rows), rows, pixels, "train", TARGET)


def prepared_keras_pass(images: opencv_loader.ImageSet) -> int:
    """One shuffled pass of the keras loader's tf.data pipeline over prepared pixels."""
    from medimage.modelling.keras_loader import prepared_dataset
    from medimage.settings.train import TrainSettings

    settings = TrainSettings(image_size=TARGET, batch_size=BATCH)
    return sum(int(batch.shape[0]) for batch, _ in prepared_dataset(images, settings, shuffle=True))


def prepared_opencv_pass(images: opencv_loader.ImageSet) -> int:
    """One shuffled pass of our loader's batches over prepared pixels (no TensorFlow)."""
    return sum(len(batch) for batch, _ in opencv_loader.batches(images, TARGET, BATCH, shuffle=True))


def legacy_pass(folder: Path) -> int:
    import tensorflow as tf

    flow = tf.keras.preprocessing.image.ImageDataGenerator().flow_from_directory(
        folder / "train", target_size=(TARGET, TARGET), batch_size=BATCH, class_mode="sparse", shuffle=False
    )
    return sum(len(flow[index][0]) for index in range(len(flow)))


def rate(action: Callable[[Path], int], folder: Path, repeat: int) -> float:
    """Images per second: the count of one pass over the median pass time (every pass reads the same images)."""
    count = action(folder)  # also warms the file cache, as the later passes find it
    return count / median_seconds(lambda: action(folder), repeat)


def main() -> None:
    parser = arguments(__doc__)
    args = parser.parse_args()
    folder = images()
    results = {
        "keras `image_dataset_from_directory` + prefetch": rate(keras_pass, folder, args.repeat),
        "ours: OpenCV, reduced decoding, 2 threads": rate(opencv_pass, folder, args.repeat),
        "legacy `ImageDataGenerator.flow_from_directory`": rate(legacy_pass, folder, args.repeat),
        "ours, 1 thread (per core)": rate(lambda where: opencv_pass(where, threads=1), folder, args.repeat),
        "keras, tf.data on 1 thread (per core)": rate(lambda where: keras_pass(where, threads=1), folder, args.repeat),
    }
    baseline = next(iter(results.values()))
    print(f"\n{COUNT:,} JPEGs {SIDE}x{SIDE} -> {TARGET}x{TARGET}, batch {BATCH}, median of {args.repeat}\n")
    print("| loader | images/s | ratio to keras |")
    print("|---|---|---|")
    for name, value in results.items():
        print(f"| {name} | {value:,.0f} | {value / baseline:.2f} |")


if __name__ == "__main__":
    main()
