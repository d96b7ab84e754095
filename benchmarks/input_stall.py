"""Training input stall: a Keras epoch fed by each loader against the same epoch on batches already in memory.

    python -m benchmarks.input_stall

The in-memory epoch is the model's compute time; what a loader adds on top is time the model waits for
input. Measured on the second epoch, when both loaders read their caches of decoded images.
Used by benchmarks/suite.py, which runs it in a fresh process per repeat.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks import loader_speed
from medimage import manifest
from medimage.manifest import ProcessedRow
from medimage.modelling import opencv_loader
from medimage.settings.train import TrainSettings

SETTINGS = TrainSettings(image_size=64, batch_size=32, epochs=2, deterministic=False)
OPENCV = SETTINGS.model_copy(update={"loader": "opencv"})
FOLDER = Path(".benchmarks-cache/stall")
COUNT = 600


def images() -> Path:
    """The first 600 of the loader benchmark's 512x512 JPEGs (hardlinks), so that an epoch takes seconds."""
    if (FOLDER / "manifest.csv").is_file():
        return FOLDER
    source = loader_speed.images()
    rows = manifest.read_processed(source)[:COUNT]
    for row in rows:
        (FOLDER / row.path).parent.mkdir(parents=True, exist_ok=True)
        os.link(source / row.path, FOLDER / row.path)
    manifest.write_manifest(FOLDER, rows, ProcessedRow)
    return FOLDER


class EpochTimes:
    """Wall time of each epoch of a fit."""

    def __init__(self) -> None:
        import keras

        outer = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
                outer.started = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                outer.times.append(time.perf_counter() - outer.started)

        self.times: list[float] = []
        self.started = 0.0
        self.callback = Callback()


def epoch_seconds(data: object, classes: int) -> float:
    import keras

    from medimage.modelling import architectures, keras_family

    keras_family.configure(SETTINGS)
    model, _ = architectures.build_model(SETTINGS, classes)
    model.compile(optimizer=keras.optimizers.Adam(SETTINGS.learning_rate), loss="sparse_categorical_crossentropy")
    timer = EpochTimes()
    model.fit(data, epochs=SETTINGS.epochs, callbacks=[timer.callback], verbose=0)
    return timer.times[-1]  # the second epoch: caches warm, graph traced


def measure(folder: str, labels: list[str]) -> dict[str, float]:
    import numpy as np
    import tensorflow as tf

    from medimage.modelling import keras_loader

    root = Path(folder)
    images = opencv_loader.image_set(root, "train", labels)
    pixels, targets = zip(
        *opencv_loader.batches(images, SETTINGS.image_size, SETTINGS.batch_size, threads=2), strict=True
    )
    in_memory = tf.data.Dataset.from_tensor_slices((np.concatenate(pixels), np.concatenate(targets))).batch(
        SETTINGS.batch_size
    )
    with tempfile.TemporaryDirectory() as scratch:
        first = epoch_seconds(
            in_memory, len(labels)
        )  # measured first and last: neither loader favoured by what ran before
        keras_epoch = epoch_seconds(
            keras_loader.data_for(root, "train", labels, SETTINGS, True, Path(scratch)), len(labels)
        )
        opencv_epoch = epoch_seconds(
            keras_loader.data_for(root, "train", labels, OPENCV, True, Path(scratch)), len(labels)
        )
        last = epoch_seconds(in_memory, len(labels))
    return {"compute": min(first, last), "keras": keras_epoch, "opencv": opencv_epoch}


if __name__ == "__main__":
    print(json.dumps(measure(str(images()), list(loader_speed.LABELS)), indent=2))
