"""Grad-CAM (Selvaraju et al., 2017) for our Keras models: where in the image the predicted class's evidence lies.

The heat is the last convolutional feature map (the small CNN's last Conv2D, or the backbone's last 4-D layer),
weighted by the spatially averaged gradient of the class score, rectified and scaled to [0, 1]. The class score
is the logit before the softmax: on confident images the softmax saturates and its gradient vanishes.
Works on every model `build_model` makes (a chain of layers, optionally one nested backbone). Imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import keras
import numpy as np
import tensorflow as tf

HEAT_WEIGHT = 0.45  # of the colour map in an overlay; the rest is the image


def _is_backbone(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.Model) and len(layer.output.shape) == 2


def _feature_layer(model: keras.Model) -> keras.layers.Layer:
    """The last top-level layer that is a convolutional feature map or a backbone holding one."""
    for layer in reversed(model.layers[1:]):
        if _is_backbone(layer) or (len(layer.output.shape) == 4 and not isinstance(layer, keras.Model)):
            return layer
    raise ValueError(f"model {model.name} has no convolutional layer: Grad-CAM needs one")


def feature_forward(model: keras.Model) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """pixels -> (feature map, logits), run layer by layer in inference mode (augmentation is a no-op)."""
    chosen = _feature_layer(model)
    if _is_backbone(chosen):
        inner = [layer for layer in chosen.layers if len(layer.output.shape) == 4][-1]
        both = keras.Model(chosen.inputs, [inner.output, chosen.output])
    head = model.layers[-1]
    if not isinstance(head, keras.layers.Dense):
        raise ValueError(f"model {model.name} does not end in a Dense layer")

    def forward(pixels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x, features = pixels, None
        for layer in model.layers[1:-1]:
            if layer is chosen and _is_backbone(layer):
                features, x = both(x, training=False)
            else:
                x = layer(x, training=False)
                features = x if layer is chosen else features
        return features, tf.matmul(tf.cast(x, head.kernel.dtype), head.kernel) + head.bias  # float16 x: mixed

    return forward


def grad_cam(model: keras.Model, pixels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Heat maps, one per image, at the images' size, in [0, 1], for the given class of each image."""
    forward = feature_forward(model)
    inputs = tf.convert_to_tensor(pixels, tf.float32)
    with tf.GradientTape() as tape:
        features, logits = forward(inputs)
        chosen = tf.gather(logits, tf.convert_to_tensor(classes, tf.int32), axis=1, batch_dims=1)
    gradients = tape.gradient(chosen, features)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    heat = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1)).numpy().astype(np.float32)  # float16: mixed
    peaks = heat.reshape(len(heat), -1).max(axis=1).reshape(-1, 1, 1)
    heat = np.divide(heat, peaks, out=np.zeros_like(heat), where=peaks > 0)
    height, width = pixels.shape[1:3]
    return np.stack([cv2.resize(one, (width, height), interpolation=cv2.INTER_LINEAR) for one in heat])


def overlay(pixels: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """One RGB float image in [0, 255] with its heat map drawn over it, as a uint8 BGR picture."""
    image = cv2.cvtColor(np.clip(pixels, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    colours = cv2.applyColorMap(np.rint(heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(image, 1 - HEAT_WEIGHT, colours, HEAT_WEIGHT, 0)


def overlays(model: keras.Model, pixels: np.ndarray, classes: np.ndarray) -> list[np.ndarray]:
    """Each image with its Grad-CAM heat for the given class drawn over it (uint8 BGR)."""
    if not len(pixels):
        return []
    return [overlay(image, heat) for image, heat in zip(pixels, grad_cam(model, pixels, classes), strict=True)]
