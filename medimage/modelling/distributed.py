"""train.distribute: multi_worker - synchronous data-parallel training over TF_CONFIG workers, TensorFlow's own engine.

Keras 3's `Model.fit` cannot run under MultiWorkerMirroredStrategy (keras-team/keras#20585: it reduces a
PerReplica input batch and fails), so this is the custom training loop TensorFlow documents for it:
`strategy.run` per replica, the loss averaged over the global batch, gradients all-reduced by the Keras
optimizer. Every worker keeps its own epoch backup in the BackupAndRestore layout (latest.weights.h5 +
training_metadata.json), so a restarted worker resumes with the others. The Keras callbacks it is given
(DVCLive on the chief) see the usual epoch events. Imports TensorFlow.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from medimage.modelling import resume
from medimage.settings.train import TrainSettings

log = logging.getLogger(__name__)


def save_epoch(model: keras.Model, folder: Path, epochs_done: int) -> None:
    """The BackupAndRestore layout, each file replaced atomically (a kill never leaves half a checkpoint)."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "partial.weights.h5"
    model.save_weights(partial)
    os.replace(partial, folder / "latest.weights.h5")
    metadata = folder / "training_metadata.partial"
    metadata.write_text(json.dumps({"epoch": epochs_done, "batch": 0}))
    os.replace(metadata, folder / resume.EPOCH_RECORD)


def fit(
    strategy: tf.distribute.Strategy,
    model: keras.Model,
    train: tf.data.Dataset,
    train_count: int,
    settings: TrainSettings,
    class_weight: dict[int, float] | None,
    callbacks: list[keras.callbacks.Callback],
    backup: Path,
) -> int:
    """Train settings.epochs epochs (resuming after the last backed-up one); return the epochs run in all."""
    step = training_step(strategy, model, settings, class_weight)
    checkpoints = backup / "train"
    start = resume_from(model, backup, settings.epochs)
    events = keras.callbacks.CallbackList(callbacks, model=model)
    events.on_train_begin()
    for epoch in range(start, settings.epochs):
        log.info("Epoch %d/%d", epoch + 1, settings.epochs)
        events.on_epoch_begin(epoch)
        logs = run_epoch(step, strategy, train, train_count, settings.batch_size * strategy.num_replicas_in_sync)
        save_epoch(model, checkpoints, epoch + 1)
        events.on_epoch_end(epoch, logs)
    events.on_train_end()
    return settings.epochs


Step = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


def training_step(
    strategy: tf.distribute.Strategy, model: keras.Model, settings: TrainSettings, class_weight: dict[int, float] | None
) -> Step:
    """One synchronous step on every replica: the class-weighted loss over the global batch and its correct count."""
    global_batch = settings.batch_size * strategy.num_replicas_in_sync
    with strategy.scope():
        optimizer = keras.optimizers.Adam(settings.learning_rate)
        if settings.mixed_precision:  # what compile() does for Keras' own fit
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        loss_of = keras.losses.SparseCategoricalCrossentropy(reduction=None)
        weights = tf.constant(
            [class_weight[index] for index in sorted(class_weight)] if class_weight else [1.0] * model.output_shape[-1],
            tf.float32,
        )

    @tf.function(jit_compile=settings.jit_compile)
    def step(pixels: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        def on_replica(pixels: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.GradientTape() as tape:
                probabilities = model(pixels, training=True)
                per_image = loss_of(labels, probabilities) * tf.gather(weights, labels)
                loss = tf.nn.compute_average_loss(per_image, global_batch_size=global_batch)
            scaled = optimizer.scale_loss(loss) if settings.mixed_precision else loss
            optimizer.apply_gradients(  # a LossScaleOptimizer unscales the gradients before applying them
                zip(tape.gradient(scaled, model.trainable_variables), model.trainable_variables, strict=True)
            )
            correct = tf.reduce_sum(
                tf.cast(tf.equal(tf.argmax(probabilities, -1), tf.cast(labels, tf.int64)), tf.float32)
            )
            return loss, correct

        loss, correct = strategy.run(on_replica, args=(pixels, labels))
        return strategy.reduce("SUM", loss, axis=None), strategy.reduce("SUM", correct, axis=None)

    return step


def resume_from(model: keras.Model, backup: Path, epochs: int) -> int:
    """The epochs already done in an interrupted run (0 for none), their weights loaded into `model`."""
    done = resume.phase_epochs(backup, "train") or 0
    if done:
        model.load_weights(backup / "train" / "latest.weights.h5")
        log.info("train: resuming after epoch %d of %d (backup in %s)", done, epochs, backup / "train")
    return done


def run_epoch(
    step: Step, strategy: tf.distribute.Strategy, train: tf.data.Dataset, train_count: int, global_batch: int
) -> dict[str, float]:
    """One pass over the sharded train set; its loss and accuracy, logged as Keras would."""
    losses, correct, started = [], 0.0, time.perf_counter()
    for pixels, labels in strategy.experimental_distribute_dataset(train):
        loss, right = step(pixels, labels)
        losses.append(float(loss))
        correct += float(right)
    logs = {"accuracy": correct / train_count, "loss": float(np.mean(losses))}
    seconds = time.perf_counter() - started
    log.info(
        "%d/%d - %.1fs - %.0fms/step - loss: %.4f - accuracy: %.4f",
        len(losses),
        math.ceil(train_count / global_batch),
        seconds,
        1000 * seconds / max(len(losses), 1),
        logs["loss"],
        logs["accuracy"],
    )
    return logs
