"""The Keras family (train.model small_cnn, mobilenet_v2, efficientnet_b0) once fitted (fitting.py): model.keras,
scored through the configured loader, explained by Grad-CAM. TensorFlow is imported when called."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medimage.modelling import opencv_loader
from medimage.modelling.classifier import Classifier
from medimage.modelling.determinism import pin_cpu_kernels
from medimage.paths import KERAS_MODEL
from medimage.settings.train import TrainSettings


def configure(settings: TrainSettings) -> None:
    """Seeds everywhere; with `deterministic`, op determinism and one thread per op (bit-identical reruns);
    the float policy (mixed_float16 with `mixed_precision`: Keras then scales the loss in compile)."""
    import keras
    import tensorflow as tf

    keras.mixed_precision.set_global_policy("mixed_float16" if settings.mixed_precision else "float32")
    if settings.deterministic:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(settings.seed)


def load(model_dir: Path, names: list[str], summary: dict, settings: TrainSettings) -> Classifier:
    pin_cpu_kernels(settings.deterministic, summary.get("dtype_policy") == "mixed_float16")
    import keras

    from medimage.modelling.keras_loader import data_for

    configure(settings)
    model = keras.saving.load_model(model_dir / KERAS_MODEL, compile=False)  # scoring needs no loss (nor its code)

    def split_probabilities(images: opencv_loader.ImageSet) -> np.ndarray:
        return model.predict(data_for(images, settings, shuffle=False), verbose=0)

    def grad_cam_overlays(pixels: np.ndarray, classes: np.ndarray) -> list[np.ndarray]:
        from medimage.modelling.saliency import overlays

        return overlays(model, pixels, classes)

    return Classifier(
        summary["model"],
        names,
        model.input_shape[1],
        lambda pixels: model.predict(pixels, verbose=0),
        split_probabilities,
        grad_cam_overlays,
        summary.get("multi_label", False),
    )
