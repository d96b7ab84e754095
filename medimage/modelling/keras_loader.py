"""The input side of Keras: a split's prepared pixels (data/pixels/<ds>, `prepared`) as tf.data (keras loader) or
through our OpenCV loader's batches as a PyDataset (opencv loader). Imports TensorFlow.

keras loader: a tf.data pipeline of image indices, reshuffled every epoch (seeded), batched, each batch's rows read
from the prepared file (`pixel_rows`), prefetched. opencv loader: `opencv_loader.load_batch` behind a
`keras.utils.PyDataset`, reshuffled by NumPy. Both read the same pixels, labelled in the manifest's class order;
neither decodes an image.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import tensorflow as tf

from medimage.modelling import opencv_loader
from medimage.settings.train import TrainSettings


class OpenCVBatches(keras.utils.PyDataset):
    """Our OpenCV loader as a Keras dataset: one batch per index, reshuffled (seeded) at every epoch end."""

    def __init__(self, images: opencv_loader.ImageSet, settings: TrainSettings, shuffle: bool) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.images, self.settings, self.shuffle = images, settings, shuffle
        self.epoch = 0
        self.order = opencv_loader.batch_order(len(images), shuffle, settings.seed, self.epoch)
        self.pool = ThreadPoolExecutor(max_workers=settings.threads)  # decodes a set that has no prepared pixels

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.settings.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = self.order[index * self.settings.batch_size : (index + 1) * self.settings.batch_size]
        return opencv_loader.load_batch(self.images, chosen, self.settings.image_size, self.pool)

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = opencv_loader.batch_order(len(self.images), self.shuffle, self.settings.seed, self.epoch)


def prepared_dataset(images: opencv_loader.ImageSet, settings: TrainSettings, shuffle: bool) -> tf.data.Dataset:
    """The split's prepared pixels as batches of (float32 images, labels), in the manifest's order or reshuffled."""
    pixels, labels = images.pixels, images.labels
    if pixels is None:
        raise ValueError("prepared_dataset needs the split's prepared pixels (prepared.with_pixels)")
    side = pixels.shape[1]

    def rows(chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return pixels.rows(chosen), labels[chosen]

    def read(chosen: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch, truth = tf.numpy_function(rows, [chosen], (tf.uint8, tf.as_dtype(labels.dtype)), stateful=False)
        batch.set_shape([None, side, side, 3])
        truth.set_shape([None, *labels.shape[1:]])
        return tf.cast(batch, tf.float32), truth  # in TensorFlow, outside the GIL, a quarter of the bytes held by it

    order = tf.data.Dataset.range(len(images))
    if shuffle:
        order = order.shuffle(max(len(images), 1), seed=settings.seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    # one array: shard batches, not files, across workers
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    batches = order.batch(settings.batch_size).map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return batches.prefetch(tf.data.AUTOTUNE).with_options(options)


def data_for(images: opencv_loader.ImageSet, settings: TrainSettings, shuffle: bool) -> tf.data.Dataset | OpenCVBatches:
    """A split with its prepared pixels as the configured loader gives it to Keras."""
    if settings.loader == "opencv":
        return OpenCVBatches(images, settings, shuffle)
    return prepared_dataset(images, settings, shuffle)
