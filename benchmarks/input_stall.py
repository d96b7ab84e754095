"""Training input stall: Keras epochs fed by each loader from the prepared pixels, against the same epochs on
batches already in memory, the first epoch included.

    python -m benchmarks.input_stall [small_cnn 64 | mobilenet_v2 224]

The in-memory epoch is the model's compute time; what a loader adds on top is time the model waits for input.
The pixels are made first (the pixels stage's work, once per size, not per experiment). Used by
benchmarks/suite.py, which runs it in a fresh process per repeat.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import loader_speed
from medimage import manifest
from medimage.manifest import ProcessedRow
from medimage.modelling import opencv_loader
from medimage.settings.train import TrainSettings

EPOCHS = 2
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


def epoch_seconds(data: object, classes: int, settings: TrainSettings) -> list[float]:
    import keras

    from medimage.modelling import architectures, keras_family

    keras_family.configure(settings)
    model, _ = architectures.build_model(settings, classes)
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss="sparse_categorical_crossentropy")
    timer = EpochTimes()
    model.fit(data, epochs=settings.epochs, callbacks=[timer.callback], verbose=0)
    return timer.times


def measure(folder: str, labels: list[str], model: str = "small_cnn", size: int = 64) -> dict[str, list[float]]:
    """Seconds of each epoch: in memory (before and after the loaders: the faster of the two), keras, opencv."""
    import numpy as np
    import tensorflow as tf

    from medimage.modelling import keras_loader
    from medimage.modelling.prepared import make_pixels, with_pixels

    settings = TrainSettings(model=model, image_size=size, batch_size=32, epochs=EPOCHS, deterministic=False)
    root = Path(folder)
    rows = manifest.read_processed(root)
    with tempfile.TemporaryDirectory() as scratch:
        make_pixels(root, rows, size, Path(scratch))
        images = with_pixels(opencv_loader.image_set(root, "train", labels, rows), rows, Path(scratch), "train", size)
        every = images.pixels.rows(np.arange(len(images))).astype(np.float32)
        in_memory = tf.data.Dataset.from_tensor_slices((every, images.labels))
        in_memory = in_memory.batch(settings.batch_size)
        first = epoch_seconds(in_memory, len(labels), settings)
        keras_epochs = epoch_seconds(keras_loader.data_for(images, settings, True), len(labels), settings)
        opencv = settings.model_copy(update={"loader": "opencv"})
        opencv_epochs = epoch_seconds(keras_loader.data_for(images, opencv, True), len(labels), opencv)
        last = epoch_seconds(in_memory, len(labels), settings)
    compute = [min(one, other) for one, other in zip(first, last, strict=True)]
    return {"compute": compute, "keras": keras_epochs, "opencv": opencv_epochs}


if __name__ == "__main__":
    model, size = (sys.argv[1], int(sys.argv[2])) if len(sys.argv) > 2 else ("small_cnn", 64)
    print(json.dumps(measure(str(images()), list(loader_speed.LABELS), model, size), indent=2))
