"""Keras models: a small CNN from scratch, and MobileNetV2 / EfficientNetB0 transfer learning.

Imports TensorFlow: only the Keras paths of train and evaluate import this module. Every model takes
float32 RGB pixels in [0, 255] (both loaders give exactly that), augments them with Keras preprocessing
layers while training, and applies its own backbone's preprocess_input inside the graph, so a saved
model.keras needs nothing else at prediction time.
"""

from __future__ import annotations

import keras
from keras import layers

from medimage.errors import PipelineError
from medimage.settings.train import TrainSettings

# Each backbone's preprocess_input, as a layer so that model.keras loads without custom code:
# MobileNetV2 scales to [-1, 1] ("tf" mode); EfficientNetB0 takes [0, 255] and rescales inside itself.
BACKBONES = {
    "mobilenet_v2": (
        keras.applications.MobileNetV2,
        lambda: layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess_input"),
    ),
    "efficientnet_b0": (keras.applications.EfficientNetB0, lambda: layers.Identity(name="preprocess_input")),
}


def augmentation(settings: TrainSettings, seed: int) -> keras.Sequential | None:
    steps: list[layers.Layer] = []
    if settings.augment.flip:
        steps.append(layers.RandomFlip("horizontal", seed=seed))
    if settings.augment.rotation > 0:
        steps.append(layers.RandomRotation(settings.augment.rotation, seed=seed + 1))
    if settings.augment.zoom > 0:
        steps.append(layers.RandomZoom(settings.augment.zoom, seed=seed + 2))
    if settings.augment.contrast > 0:
        steps.append(layers.RandomContrast(settings.augment.contrast, value_range=(0, 255), seed=seed + 3))
    return keras.Sequential(steps, name="augmentation") if steps else None


def small_cnn(inputs: keras.KerasTensor, classes: int, activation: str) -> keras.KerasTensor:
    x = layers.Rescaling(1.0 / 255)(inputs)
    for filters in (16, 32, 64):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    # Max, not average: "is this pattern anywhere" learns in far fewer steps than "how much of it on average"
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dropout(0.2)(x)
    return layers.Dense(classes, activation=activation, dtype="float32")(x)  # float32 output also under mixed_float16


def load_backbone(name: str, settings: TrainSettings) -> keras.Model:
    constructor, _ = BACKBONES[name]
    try:
        return constructor(
            include_top=False,
            weights=settings.weights,
            input_shape=(settings.image_size, settings.image_size, 3),
            pooling="avg",
        )
    except Exception as error:  # Keras raises a bare Exception("URL fetch failure ...") offline
        if settings.weights != "imagenet":
            raise
        raise PipelineError(
            f"train.weights imagenet: cannot download the {name} ImageNet weights "
            f"({' '.join(str(error).split())[:120]}); copy the weights file into ~/.keras/models/ on this machine "
            "(Keras looks there first), or set train.weights: null"
        ) from None


def build_model(
    settings: TrainSettings, classes: int, multi_label: bool = False
) -> tuple[keras.Model, keras.Model | None]:
    """The model, and its backbone (None for the small CNN) so that training can freeze and unfreeze it. One
    softmax over the classes, or for a multi-label set one sigmoid per label."""
    activation = "sigmoid" if multi_label else "softmax"
    inputs = keras.Input((settings.image_size, settings.image_size, 3), name="pixels")
    augment = augmentation(settings, settings.seed)
    x = augment(inputs) if augment is not None else inputs
    if settings.model == "small_cnn":
        return keras.Model(inputs, small_cnn(x, classes, activation), name="small_cnn"), None
    backbone = load_backbone(settings.model, settings)
    _, preprocess = BACKBONES[settings.model]
    x = preprocess()(x)
    backbone.trainable = False
    x = backbone(x, training=False)  # BatchNorm stays in inference mode, also when fine-tuning
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(classes, activation=activation, dtype="float32")(x)
    return keras.Model(inputs, outputs, name=settings.model), backbone


def unfreeze_top(backbone: keras.Model, count: int) -> int:
    """Make the last `count` non-BatchNorm layers of the backbone trainable; return how many were."""
    backbone.trainable = True
    candidates = [layer for layer in backbone.layers if not isinstance(layer, layers.BatchNormalization)]
    chosen = {id(layer) for layer in candidates[-count:]} if count > 0 else set()
    for layer in backbone.layers:
        layer.trainable = id(layer) in chosen
    return len(chosen)
