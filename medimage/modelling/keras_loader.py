"""The input side of Keras: tf.data from the split folders (keras loader), or our OpenCV loader as a PyDataset.

keras loader: `image_dataset_from_directory`, unbatched, cached decoded to a temporary file (not in memory),
reshuffled every epoch, batched and prefetched. opencv loader: `medimage.modelling.opencv_loader` behind a
`keras.utils.PyDataset`. Both are given the class order from the processed manifest. Imports TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import cv2
import keras
import numpy as np
import tensorflow as tf

from medimage.decoding import restore_hint
from medimage.errors import PipelineError
from medimage.modelling import opencv_loader
from medimage.settings.train import TrainSettings

SHUFFLE_BUFFER = 1024
KERAS_LISTED = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # the files image_dataset_from_directory reads


@contextmanager
def corrupt_images_named(folders: list[Path]) -> Iterator[None]:
    """Turn TensorFlow's nameless decode error into one naming the corrupt files (searched only after a failure)."""
    try:
        yield
    except tf.errors.InvalidArgumentError:
        broken = [path for folder in folders for path in opencv_loader.undecodable(folder)]
        if not broken:
            raise
        shown = ", ".join(str(path) for path in broken[:3]) + (
            f" and {len(broken) - 3} more" if len(broken) > 3 else ""
        )
        raise PipelineError(
            f"cannot decode {len(broken)} image(s): {shown}; the files are corrupt or not images; "
            + restore_hint(broken[0]).replace("restore it", "restore them")
        ) from None


class OpenCVBatches(keras.utils.PyDataset):
    """Our OpenCV loader as a Keras dataset: one batch per index, reshuffled (seeded) at every epoch end.

    With `cache_file`, images decoded in the first epoch are kept there, resized, as uint8 (a memory map on
    disk, not in RAM) and later epochs read them back instead of decoding again: on 2 cores, decoding every
    epoch would make the model wait for its input.
    """

    def __init__(
        self, images: opencv_loader.ImageSet, settings: TrainSettings, shuffle: bool, cache_file: Path | None = None
    ) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.images, self.settings, self.shuffle = images, settings, shuffle
        self.epoch = 0
        self.order = opencv_loader.batch_order(len(images), shuffle, settings.seed, self.epoch)
        self.pool = ThreadPoolExecutor(max_workers=settings.threads)
        side = settings.image_size
        self.cache = (
            np.lib.format.open_memmap(cache_file, "w+", np.uint8, (len(images), side, side, 3))
            if cache_file and len(images)
            else None
        )
        self.cached = np.zeros(len(images), bool)

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.settings.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = self.order[index * self.settings.batch_size : (index + 1) * self.settings.batch_size]
        if self.cache is not None and self.cached[chosen].all():
            return self.cache[chosen].astype(np.float32), self.images.labels[chosen]
        pixels, labels = opencv_loader.load_batch(self.images, chosen, self.settings.image_size, self.pool)
        if self.cache is not None:
            self.cache[chosen] = np.rint(pixels).clip(0, 255).astype(np.uint8)
            self.cached[chosen] = True
        return pixels, labels

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = opencv_loader.batch_order(len(self.images), self.shuffle, self.settings.seed, self.epoch)


def split_folder(folder: Path, names: list[str], settings: TrainSettings, batch_size: int | None) -> tf.data.Dataset:
    """One split folder in file order, labelled by folder name in the given class order; `file_paths` names each
    element's file. Keras' `image_dataset_from_directory` where it lists every file; else the same pipeline over
    every file, decoded by OpenCV (Keras skips .tif and .webp files, and TensorFlow cannot decode TIFF at all)."""
    files = [(path, index) for index, name in enumerate(names) for path in sorted((folder / name).rglob("*"))]
    files = [(path, index) for path, index in files if path.is_file()]
    if all(path.suffix.lower() in KERAS_LISTED for path, _ in files):
        return keras.utils.image_dataset_from_directory(
            folder,
            labels="inferred",
            label_mode="int",
            class_names=names,
            color_mode="rgb",
            batch_size=batch_size,
            image_size=(settings.image_size, settings.image_size),
            shuffle=False,
            interpolation="bilinear",
            verbose=False,
        )
    paths, labels = [str(path) for path, _ in files], np.array([index for _, index in files], np.int32)
    return listed_files(paths, labels, settings, batch_size)


def manifest_images(images: opencv_loader.ImageSet, settings: TrainSettings, batch_size: int | None) -> tf.data.Dataset:
    """A multi-label split (no label folders) in the manifest's order, its label matrix (NaN unknown) beside."""
    return listed_files([str(path) for path in images.paths], images.labels, settings, batch_size)


def listed_files(
    paths: list[str], labels: np.ndarray, settings: TrainSettings, batch_size: int | None
) -> tf.data.Dataset:
    """What `image_dataset_from_directory` gives (RGB, full decode, bilinear resize in the graph), for the files
    listed: decoded by TensorFlow as Keras decodes them where it can read all of them, by OpenCV otherwise
    (TensorFlow cannot decode TIFF)."""
    side = settings.image_size
    by_tensorflow = all(Path(path).suffix.lower() in KERAS_LISTED for path in paths)

    def decode(path: bytes) -> np.ndarray:
        image = cv2.imdecode(np.fromfile(path.decode(), np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot decode {path.decode()}")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def load(path: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if by_tensorflow:
            image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        else:
            image = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
        image.set_shape([None, None, 3])
        return tf.image.resize(image, (side, side), method="bilinear"), label

    pairs = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), tf.constant(labels)))
    dataset = pairs.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size) if batch_size else dataset
    dataset.file_paths = paths
    return dataset


def for_training(dataset: tf.data.Dataset, settings: TrainSettings, shuffle: bool, cache_file: Path) -> tf.data.Dataset:
    """A split for training: decoded once into a file cache, reshuffled each epoch when asked, batched, prefetched."""
    dataset = dataset.cache(str(cache_file))
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=settings.seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    # one image folder: shard elements, not files, across workers
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.batch(settings.batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)


def data_for(
    processed: Path, split: str, names: list[str], settings: TrainSettings, shuffle: bool, scratch: Path
) -> tf.data.Dataset | OpenCVBatches:
    """A split as the configured loader gives it to Keras; decoded images are cached under `scratch`."""
    images = opencv_loader.image_set(processed, split, names)
    if settings.loader == "opencv":
        return OpenCVBatches(images, settings, shuffle, scratch / f"{split}.npy")
    if images.multi_label:
        listed = manifest_images(images, settings, batch_size=None)
    else:
        listed = split_folder(processed / split, names, settings, batch_size=None)
    return for_training(listed, settings, shuffle, scratch / f"{split}.cache")
