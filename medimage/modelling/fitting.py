"""Fit a Keras model on a split's prepared pixels, with either loader (`keras_loader`). Imports TensorFlow.

Seeds and, with train.deterministic, op determinism are set first; backbones train their head, then
optionally fine-tune their top layers; every epoch is backed up so that a killed run resumes.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from medimage.atomic import write_json
from medimage.errors import PipelineError
from medimage.modelling import architectures, cluster, distributed, opencv_loader, resume
from medimage.modelling.keras_family import configure
from medimage.modelling.keras_loader import data_for
from medimage.settings.train import TrainSettings

log = logging.getLogger(__name__)


def strategy_for(settings: TrainSettings) -> tf.distribute.Strategy | None:
    """TensorFlow's own distribution engine: every local device (mirrored) or every TF_CONFIG worker (multi_worker)."""
    if settings.distribute == "none":
        return None
    if settings.distribute == "mirrored":
        return tf.distribute.MirroredStrategy()
    cluster.tf_config()  # a clear error before TensorFlow waits for workers that will never come
    ring = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING
    )
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=ring)


def fit(
    train: opencv_loader.ImageSet,
    val: opencv_loader.ImageSet | None,
    settings: TrainSettings,
    callbacks: list[keras.callbacks.Callback],
    backup: Path,
) -> tuple[keras.Model, dict]:
    """Train (and fine-tune, for backbones) on `train`, stopping early on `val` where given, both with their
    prepared pixels; return the model and a summary of what ran.

    Every epoch is backed up under `backup` (weights and epoch, Keras' BackupAndRestore), so a killed run
    resumes where it stopped; the caller deletes `backup` once the model is saved.
    """
    configure(settings)
    strategy = strategy_for(settings)
    replicas = strategy.num_replicas_in_sync if strategy else 1
    per_step = settings.model_copy(update={"batch_size": settings.batch_size * replicas})  # batch_size is per replica
    train_labels = train.labels
    multi_label = train.multi_label
    if multi_label and settings.distribute == "multi_worker":
        raise PipelineError("train.distribute multi_worker does not train multi-label sets yet; use none or mirrored")
    weights = None if multi_label else class_weights(train_labels, len(train.class_names), settings)
    loss = masked_binary_crossentropy(label_weights(train_labels, settings)) if multi_label else None
    if strategy:
        steps = math.ceil(len(train_labels) / per_step.batch_size)
        log.info("%s: %d replica(s) in sync, global batch %d", settings.distribute, replicas, per_step.batch_size)
        log.info("%d steps per epoch", steps)
    with strategy.scope() if strategy else nullcontext():
        model, backbone = architectures.build_model(settings, len(train.class_names), multi_label)
        batches = data_for(train, per_step, True)
        if settings.distribute == "multi_worker":  # Keras' fit cannot run under MultiWorkerMirroredStrategy: our loop
            epochs = distributed.fit(strategy, model, batches, len(train_labels), settings, weights, callbacks, backup)
            has_val, unfrozen = False, 0  # no early stopping: every worker runs the same epochs
        else:
            has_val = val is not None
            checked = data_for(val, per_step, False) if val is not None else None
            epochs, unfrozen = fit_phases(model, backbone, batches, checked, weights, callbacks, backup, settings, loss)
    summary = {
        "epochs": epochs,
        "unfrozen_layers": unfrozen,
        "class_weight": label_weights(train_labels, settings) if multi_label else weights,
        "early_stopping": has_val,
        "dtype_policy": keras.mixed_precision.global_policy().name,
        "jit_compile": settings.jit_compile,
    }
    if multi_label:  # written only then: a single-label model's train.json is as it was
        summary["multi_label"] = True
    if strategy:
        summary |= {"distribute": settings.distribute, "replicas": replicas, "global_batch": per_step.batch_size}
    return model, summary


def class_weights(train_labels: np.ndarray, classes: int, settings: TrainSettings) -> dict[int, float] | None:
    """train.class_weight: balanced weighs each class by the inverse of its share of the train split."""
    if settings.class_weight != "balanced":
        return None
    values = compute_class_weight("balanced", classes=np.arange(classes), y=train_labels)
    return {index: float(value) for index, value in enumerate(values)}


def label_weights(labels: np.ndarray, settings: TrainSettings) -> dict[str, list[float]] | None:
    """A multi-label set's train.class_weight: balanced weighs each label's positives and negatives by the inverse
    of their share of that label's known values, as scikit-learn's balanced does for one binary label."""
    if settings.class_weight != "balanced":
        return None
    known = ~np.isnan(labels)
    positives, negatives = (np.sum(known & (labels == value), axis=0) for value in (1, 0))
    total = positives + negatives

    def weigh(counts: np.ndarray) -> list[float]:
        return [
            round(float(all_known / (2 * count)), 6) if count else 1.0
            for all_known, count in zip(total, counts, strict=True)
        ]

    return {"positive": weigh(positives), "negative": weigh(negatives)}


def masked_binary_crossentropy(weights: dict[str, list[float]] | None) -> Callable:
    """Binary cross-entropy per label, left out where the label is unknown (NaN), averaged over the known labels
    of each image; positives and negatives weighed per label (`label_weights`)."""
    positive = tf.constant(weights["positive"], tf.float32) if weights else 1.0
    negative = tf.constant(weights["negative"], tf.float32) if weights else 1.0

    def loss(truth: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
        known = tf.logical_not(tf.math.is_nan(truth))
        target = tf.where(known, truth, 0.0)
        p = tf.clip_by_value(tf.cast(probabilities, tf.float32), keras.config.epsilon(), 1 - keras.config.epsilon())
        cells = -(target * tf.math.log(p) * positive + (1 - target) * tf.math.log(1 - p) * negative)
        cells = tf.where(known, cells, 0.0)
        return tf.reduce_sum(cells, -1) / tf.maximum(tf.reduce_sum(tf.cast(known, tf.float32), -1), 1.0)

    return loss


def masked_accuracy(truth: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
    """The share of an image's known labels decided right at 0.5 (a multi-label set's training accuracy)."""
    known = tf.logical_not(tf.math.is_nan(truth))
    decided = tf.round(tf.cast(probabilities, tf.float32))
    right = tf.logical_and(known, tf.equal(tf.where(known, truth, 0.0), decided))
    counted = tf.maximum(tf.reduce_sum(tf.cast(known, tf.float32), -1), 1.0)
    return tf.reduce_sum(tf.cast(right, tf.float32), -1) / counted


masked_accuracy.__name__ = "accuracy"  # the curves' key, as for one label per image


def fit_phases(
    model: keras.Model,
    backbone: keras.Model | None,
    train: object,
    val: object | None,
    weights: dict[int, float] | None,
    callbacks: list[keras.callbacks.Callback],
    backup: Path,
    settings: TrainSettings,
    loss: Callable | None = None,
) -> tuple[int, int]:
    """Keras' fit: the head (or the whole small model), then the backbone's top layers where asked; stopped early on
    val_loss where there is a val split. The epochs run in all and the layers unfrozen."""
    if val is not None:
        stop = keras.callbacks.EarlyStopping(
            "val_loss", patience=settings.early_stopping_patience, restore_best_weights=True
        )
        callbacks = [*callbacks, stop]
    phase = Phase(model, train, val, weights, callbacks, backup, settings.jit_compile, loss)
    epochs = phase.run("train", settings.learning_rate, 0, settings.epochs)
    if backbone is None or settings.fine_tune_layers == 0 or settings.fine_tune_epochs == 0:
        return epochs, 0
    unfrozen = architectures.unfreeze_top(backbone, settings.fine_tune_layers)
    epochs += phase.run("fine_tune", settings.fine_tune_learning_rate, epochs, epochs + settings.fine_tune_epochs)
    return epochs, unfrozen


class EpochBackup(keras.callbacks.BackupAndRestore):
    """Keras' per-epoch backup, falling back to the previous epoch's weights when a kill cut the latest short:
    Keras falls back on OSError only, and h5py raises RuntimeError for a file whose superblock was written before
    the objects it points to (a file cut at its end gives OSError, which Keras handles itself)."""

    def _load_model(self) -> None:
        try:
            super()._load_model()
        except RuntimeError as error:
            Path(self._weights_path).unlink()  # a new file: HDF5 would reuse its open handle on the damaged one
            raise OSError(f"damaged backup {self._weights_path}: {error}") from error


class Phase:
    """One `model.fit` call that survives a kill: per-epoch backups, and a marker with its weights once done."""

    def __init__(
        self,
        model: keras.Model,
        train: object,
        val: object,
        class_weight: dict | None,
        callbacks: list,
        backup: Path,
        jit_compile: bool,
        loss: Callable | None = None,  # a multi-label set's masked loss; else sparse categorical cross-entropy
    ) -> None:
        self.model, self.train, self.val, self.class_weight, self.callbacks, self.backup = (
            model,
            train,
            val,
            class_weight,
            callbacks,
            backup,
        )
        self.jit_compile = jit_compile
        self.loss = loss

    def run(self, name: str, learning_rate: float, first_epoch: int, last_epoch: int) -> int:
        """Train epochs [first_epoch, last_epoch) (fewer if stopped early); return how many the phase ran in all."""
        done, final_weights, checkpoints = (
            self.backup / f"{name}.done.json",
            self.backup / f"{name}.weights.h5",
            self.backup / name,
        )
        if done.is_file():  # finished before the kill: its weights, not a rerun
            self.model.load_weights(final_weights)
            log.info("%s: finished in an earlier, interrupted run; restored its weights", name)
            return json.loads(done.read_text())["epochs"]
        resumed = resume.phase_epochs(self.backup, name)
        if resumed is not None:
            log.info("%s: resuming after epoch %d of %d (backup in %s)", name, resumed, last_epoch, checkpoints)
        self.model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=self.loss or "sparse_categorical_crossentropy",
            metrics=[masked_accuracy if self.loss else "accuracy"],
            jit_compile=self.jit_compile,
        )
        keep = EpochBackup(str(checkpoints), double_checkpoint=True, delete_checkpoint=False)
        self.model.fit(
            self.train,
            validation_data=self.val,
            initial_epoch=first_epoch,
            epochs=last_epoch,
            class_weight=self.class_weight,
            callbacks=[*self.callbacks, keep],
            verbose=1 if sys.stdout.isatty() else 2,
        )
        reached = resume.phase_epochs(self.backup, name) or first_epoch
        self.model.save_weights(final_weights)
        write_json(done, {"epochs": reached - first_epoch, "last_epoch": reached})
        return reached - first_epoch
