"""What train reads: params.yaml `train` (the model, its input and its fitting); evaluate and predict read it too."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from medimage.settings.files import StageParams, Strict
from medimage.settings.split import SplitSettings


class AugmentSettings(Strict):
    flip: bool = True  # random horizontal flips
    rotation: float = Field(0.05, ge=0, le=0.5)  # fraction of a full turn
    zoom: float = Field(0.1, ge=0, le=0.5)
    contrast: float = Field(0.3, ge=0, le=1)  # random contrast changes: robustness to acquisition differences


class TrainSettings(Strict):
    loader: Literal["keras", "opencv"] = "keras"
    model: Literal["small_cnn", "mobilenet_v2", "efficientnet_b0", "sklearn_linear"] = "small_cnn"
    weights: Literal["imagenet"] | None = None
    image_size: int = Field(64, ge=32, le=1024)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(16, ge=1, le=4096)
    learning_rate: float = Field(0.002, gt=0, le=1)
    fine_tune_layers: int = Field(0, ge=0)  # backbones: unfreeze this many top layers for a second phase
    fine_tune_epochs: int = Field(0, ge=0)
    fine_tune_learning_rate: float = Field(1e-5, gt=0, le=1)
    augment: AugmentSettings = AugmentSettings()
    class_weight: Literal["balanced"] | None = "balanced"
    early_stopping_patience: int = Field(3, ge=1)  # epochs without val_loss improvement (needs a val split)
    deterministic: bool = True  # bit-identical reruns; single-threaded TensorFlow ops
    distribute: Literal["none", "mirrored", "multi_worker"] = (
        "none"  # tf.distribute strategy; multi_worker reads TF_CONFIG
    )
    threads: int = Field(2, ge=1, le=64)  # OpenCV loader decoding threads
    mixed_precision: bool = False  # float16 compute, float32 weights and outputs, loss scaling (GPU tensor cores)
    jit_compile: bool = False  # XLA-compile the training step
    seed: int = Field(42, ge=0, lt=2**32)  # NumPy, TensorFlow and scikit-learn take 32 bits

    @model_validator(mode="after")
    def _xla_has_kernels_for_every_layer(self) -> TrainSettings:
        if self.jit_compile and (self.augment.rotation > 0 or self.augment.zoom > 0):
            raise ValueError(
                "jit_compile: true needs augment.rotation: 0 and augment.zoom: 0 (Keras' RandomRotation and "
                "RandomZoom have no XLA kernels, and Keras would silently train without XLA)"
            )
        return self

    @model_validator(mode="after")
    def _multi_worker_runs_our_loop(self) -> TrainSettings:
        # checked here, before train writes anything, not when TensorFlow has started waiting for workers
        if self.distribute == "multi_worker" and self.fine_tune_epochs > 0:
            raise ValueError("distribute: multi_worker trains one phase; set fine_tune_epochs: 0")
        if self.distribute == "multi_worker" and self.loader != "keras":
            raise ValueError("distribute: multi_worker needs loader: keras (tf.data shards the input per worker)")
        return self


class TrainParams(StageParams):
    split: SplitSettings = SplitSettings()  # link: how a missing view is rebuilt
    train: TrainSettings = TrainSettings()
