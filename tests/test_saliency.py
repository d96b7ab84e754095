"""Grad-CAM looks where the evidence is: a small CNN trained to find a planted patch is hot on the patch.

TensorFlow is imported inside the tests: collection must not load it (other tests check a stage never does).
"""

from __future__ import annotations

import numpy as np
import pytest

from medimage.settings.project import Params

SIDE, PATCH, IMAGES = 48, 10, 240


def planted_patches(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey noise images; every second one (label 1) has a white square at a random place. Returns the corners too."""
    rng = np.random.default_rng(seed)
    pixels = np.repeat(rng.uniform(60, 140, (IMAGES, SIDE, SIDE, 1)), 3, axis=3).astype(np.float32)
    labels = np.arange(IMAGES) % 2
    corners = rng.integers(0, SIDE - PATCH, (IMAGES, 2))
    for index in np.flatnonzero(labels == 1):
        top, left = corners[index]
        pixels[index, top : top + PATCH, left : left + PATCH] = 255
    return pixels, labels, corners


def test_heat_concentrates_on_the_planted_discriminative_patch(params: Params) -> None:
    import keras

    from medimage.modelling.architectures import build_model
    from medimage.modelling.saliency import grad_cam

    keras.utils.set_random_seed(0)
    pixels, labels, corners = planted_patches(seed=0)
    settings = params.train.model_copy(update={"model": "small_cnn", "image_size": SIDE})
    model, _ = build_model(settings, 2)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(pixels, labels, epochs=6, batch_size=16, verbose=0)
    assert history.history["accuracy"][-1] > 0.95  # the model did learn the patch

    with_patch = np.flatnonzero(labels == 1)[:40]
    heat = grad_cam(model, pixels[with_patch], np.ones(len(with_patch), dtype=int))
    assert heat.shape == (len(with_patch), SIDE, SIDE) and heat.min() >= 0 and heat.max() <= 1
    ratios, peaks_on_patch = [], 0
    for one, index in zip(heat, with_patch, strict=True):
        top, left = corners[index]
        on_patch = np.zeros((SIDE, SIDE), bool)
        on_patch[top : top + PATCH, left : left + PATCH] = True
        ratios.append(one[on_patch].mean() / max(one[~on_patch].mean(), 1e-6))
        row, column = np.unravel_index(one.argmax(), one.shape)
        margin = SIDE // 12  # a feature-map cell is 8 pixels at this size: the peak may sit half a cell off
        peaks_on_patch += top - margin <= row < top + PATCH + margin and left - margin <= column < left + PATCH + margin
    assert np.median(ratios) > 2.0  # twice as hot on the patch as elsewhere
    assert peaks_on_patch >= 0.75 * len(with_patch)


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "efficientnet_b0"])
def test_grad_cam_reaches_into_a_nested_backbone(params: Params, backbone: str) -> None:
    import tensorflow as tf

    from medimage.modelling.architectures import build_model
    from medimage.modelling.saliency import feature_forward, grad_cam, overlay

    settings = params.train.model_copy(update={"model": backbone, "weights": None, "image_size": 64})
    model, _ = build_model(settings, 3)
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    features, logits = feature_forward(model)(tf.constant(pixels))
    assert features.shape[:3] == (2, 2, 2)  # the backbone's last 4-D map, not the pooled vector
    # the layer-by-layer pass is the model: its logits give the model's own probabilities
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), model.predict(pixels, verbose=0), atol=1e-5)
    heat = grad_cam(model, pixels, np.array([0, 2]))
    assert heat.shape == (2, 64, 64) and np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1
    picture = overlay(pixels[0], heat[0])
    assert picture.shape == (64, 64, 3) and picture.dtype == np.uint8
