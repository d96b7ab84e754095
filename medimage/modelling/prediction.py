"""Class probabilities from a trained model folder, whatever `train.model` made it: for a split, or for pixels.

The scikit-learn baseline is scored without TensorFlow; the Keras models import it only when called.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medimage.errors import PipelineError
from medimage.modelling import linear, opencv_loader
from medimage.modelling.determinism import pin_cpu_kernels
from medimage.params import TrainSettings
from medimage.paths import KERAS_MODEL, LABELS, TRAIN_SUMMARY


def predict(model_dir: Path, processed: Path, split: str, names: list[str], settings: TrainSettings) -> np.ndarray:
    """Probabilities for one split (rows in the processed manifest's order, columns in `names`' order)."""
    if settings.model == "sklearn_linear":
        return linear.predict_proba(model_dir, opencv_loader.image_set(processed, split, names), settings)
    return keras_probabilities(model_dir / KERAS_MODEL, processed, split, names, settings)


def keras_probabilities(
    model_file: Path, processed: Path, split: str, names: list[str], settings: TrainSettings
) -> np.ndarray:
    """A saved Keras model's probabilities for one split, read by the configured loader."""
    pin_cpu_kernels(settings.deterministic, settings.mixed_precision)
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


@dataclass(frozen=True)
class Classifier:
    """A trained model ready for pixels: float32 RGB in [0, 255], n x image_size x image_size x 3."""

    class_names: list[str]
    image_size: int
    probabilities: Callable[[np.ndarray], np.ndarray]
    keras_model: Any | None  # for Grad-CAM; None for sklearn_linear


def load_classifier(model_dir: Path, deterministic: bool) -> Classifier:
    """The model in `model_dir` as train wrote it (model.keras or model.joblib, labels.json, train.json)."""
    files = [model_dir / LABELS, model_dir / TRAIN_SUMMARY]
    if not all(path.is_file() for path in files):
        raise PipelineError(f"no trained model in {model_dir}: run train first (dvc repro train@{model_dir.name})")
    names, summary = (json.loads(path.read_text()) for path in files)
    if summary["model"] == "sklearn_linear":
        pipeline = linear.load(model_dir)

        def scikit_learn(pixels: np.ndarray) -> np.ndarray:
            return pipeline.predict_proba(np.array([linear.image_features(one) for one in pixels]))

        return Classifier(names, summary["image_size"], scikit_learn, None)
    pin_cpu_kernels(deterministic, summary.get("dtype_policy") == "mixed_float16")
    import keras

    model = keras.saving.load_model(model_dir / KERAS_MODEL)
    return Classifier(names, model.input_shape[1], lambda pixels: model.predict(pixels, verbose=0), model)
