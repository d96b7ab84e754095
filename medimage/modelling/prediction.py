"""Class probabilities from a trained model folder, whatever `train.model` made it.

The scikit-learn baseline is scored without TensorFlow; the Keras models import it only when called.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medimage.modelling import linear, opencv_loader
from medimage.modelling.determinism import pin_cpu_kernels
from medimage.params import TrainSettings
from medimage.paths import KERAS_MODEL


def predict(model_dir: Path, processed: Path, split: str, names: list[str], settings: TrainSettings) -> np.ndarray:
    """Probabilities for one split (rows in the processed manifest's order, columns in `names`' order)."""
    if settings.model == "sklearn_linear":
        return linear.predict_proba(model_dir, opencv_loader.image_set(processed, split, names), settings)
    return keras_probabilities(model_dir / KERAS_MODEL, processed, split, names, settings)


def keras_probabilities(
    model_file: Path, processed: Path, split: str, names: list[str], settings: TrainSettings
) -> np.ndarray:
    """A saved Keras model's probabilities for one split, read by the configured loader."""
    pin_cpu_kernels(settings.deterministic)
    import keras
    import tensorflow as tf

    from medimage.modelling.fitting import configure
    from medimage.modelling.keras_loader import OpenCVBatches, corrupt_images_named, split_folder

    configure(settings)
    model = keras.saving.load_model(model_file)
    images = opencv_loader.image_set(processed, split, names)
    if settings.loader == "opencv":
        return model.predict(OpenCVBatches(images, settings, shuffle=False), verbose=0)
    dataset = split_folder(processed / split, names, settings, batch_size=settings.batch_size)
    row_of = {Path(path).resolve(): row for row, path in enumerate(dataset.file_paths)}
    with corrupt_images_named([processed / split]):
        probabilities = model.predict(dataset.prefetch(tf.data.AUTOTUNE), verbose=0)
    return probabilities[[row_of[path.resolve()] for path in images.paths]]
