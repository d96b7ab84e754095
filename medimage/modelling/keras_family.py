"""The Keras family (train.model small_cnn, mobilenet_v2, efficientnet_b0): fitted by fitting.py, saved as
model.keras, scored through the configured loader, explained by Grad-CAM. TensorFlow is imported when called."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medimage.modelling import opencv_loader
from medimage.modelling.classifier import Classifier
from medimage.modelling.determinism import pin_cpu_kernels
from medimage.params import TrainSettings
from medimage.paths import KERAS_MODEL

if TYPE_CHECKING:  # the type only: evaluate and predict need no DVCLive
    from dvclive import Live


def fit_and_save(
    processed: Path, names: list[str], settings: TrainSettings, live: Live, backup: Path, staging: Path
) -> dict:
    """Train (curves to `live`, epochs backed up in `backup`), write model.keras into `staging`; the summary."""
    from dvclive.keras import DVCLiveCallback

    from medimage.modelling import fitting
    from medimage.modelling.model_files import save_keras_model

    model, summary = fitting.fit(processed, names, settings, [DVCLiveCallback(live=live)], backup)
    save_keras_model(model, staging / KERAS_MODEL)
    return summary


def split_probabilities(
    model_dir: Path, processed: Path, split: str, names: list[str], settings: TrainSettings
) -> np.ndarray:
    """The saved model's probabilities for one split, read by the configured loader."""
    pin_cpu_kernels(settings.deterministic, settings.mixed_precision)
    import keras
    import tensorflow as tf

    from medimage.modelling.fitting import configure
    from medimage.modelling.keras_loader import OpenCVBatches, corrupt_images_named, split_folder

    configure(settings)
    model = keras.saving.load_model(model_dir / KERAS_MODEL)
    images = opencv_loader.image_set(processed, split, names)
    if settings.loader == "opencv":
        return model.predict(OpenCVBatches(images, settings, shuffle=False), verbose=0)
    dataset = split_folder(processed / split, names, settings, batch_size=settings.batch_size)
    row_of = {Path(path).resolve(): row for row, path in enumerate(dataset.file_paths)}
    with corrupt_images_named([processed / split]):
        probabilities = model.predict(dataset.prefetch(tf.data.AUTOTUNE), verbose=0)
    return probabilities[[row_of[path.resolve()] for path in images.paths]]


def load(model_dir: Path, names: list[str], summary: dict, deterministic: bool) -> Classifier:
    pin_cpu_kernels(deterministic, summary.get("dtype_policy") == "mixed_float16")
    import keras

    model = keras.saving.load_model(model_dir / KERAS_MODEL)

    def grad_cam_overlays(pixels: np.ndarray, classes: np.ndarray) -> list[np.ndarray]:
        from medimage.modelling.saliency import overlays

        return overlays(model, pixels, classes)

    return Classifier(
        summary["model"],
        names,
        model.input_shape[1],
        lambda pixels: model.predict(pixels, verbose=0),
        grad_cam_overlays,
    )
