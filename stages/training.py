"""Fit a Keras model on the processed folders, with either loader. Imports TensorFlow.

keras loader: `image_dataset_from_directory`, unbatched, cached decoded to a temporary file (not in
memory), reshuffled every epoch, batched and prefetched. opencv loader: our loader behind a
`keras.utils.PyDataset`. Both are given the class order from `loader.class_names()`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
import keras
from sklearn.utils.class_weight import compute_class_weight

from stages import cluster, distributed, loader, models, resume
from stages.atomic import write_json
from stages.config import TrainSettings
from stages.errors import PipelineError

SHUFFLE_BUFFER = 1024


@contextmanager
def corrupt_images_named(folders: list[Path]) -> Iterator[None]:
    """Turn TensorFlow's nameless decode error into one naming the corrupt files (searched only after a failure)."""
    try:
        yield
    except tf.errors.InvalidArgumentError:
        broken = [path for folder in folders for path in loader.undecodable(folder)]
        if not broken:
            raise
        shown = ", ".join(str(path) for path in broken[:3]) + (f" and {len(broken) - 3} more" if len(broken) > 3 else "")
        raise PipelineError(
            f"cannot decode {len(broken)} image(s): {shown}; the files are corrupt or not images; "
            f"restore them with: dvc checkout {folders[0].parent}"
        ) from None


def configure(settings: TrainSettings) -> None:
    """Seeds everywhere; with `deterministic`, op determinism and one thread per op (bit-identical reruns)."""
    if settings.deterministic:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(settings.seed)


class OpenCVBatches(keras.utils.PyDataset):
    """Our OpenCV loader as a Keras dataset: one batch per index, reshuffled (seeded) at every epoch end.

    With `cache_file`, images decoded in the first epoch are kept there, resized, as uint8 (a memory map on
    disk, not in RAM) and later epochs read them back instead of decoding again: on 2 cores, decoding every
    epoch would make the model wait for its input.
    """

    def __init__(self, images: loader.ImageSet, settings: TrainSettings, shuffle: bool, cache_file: Path | None = None) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.images, self.settings, self.shuffle = images, settings, shuffle
        self.epoch = 0
        self.order = loader.batch_order(len(images), shuffle, settings.seed, self.epoch)
        self.pool = loader.ThreadPoolExecutor(max_workers=settings.threads)
        side = settings.image_size
        self.cache = np.lib.format.open_memmap(cache_file, "w+", np.uint8, (len(images), side, side, 3)) if cache_file and len(images) else None
        self.cached = np.zeros(len(images), bool)

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.settings.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = self.order[index * self.settings.batch_size : (index + 1) * self.settings.batch_size]
        if self.cache is not None and self.cached[chosen].all():
            return self.cache[chosen].astype(np.float32), self.images.labels[chosen]
        pixels, labels = loader.load_batch(self.images, chosen, self.settings.image_size, self.pool)
        if self.cache is not None:
            self.cache[chosen] = np.rint(pixels).clip(0, 255).astype(np.uint8)
            self.cached[chosen] = True
        return pixels, labels

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = loader.batch_order(len(self.images), self.shuffle, self.settings.seed, self.epoch)


def strategy_for(settings: TrainSettings) -> tf.distribute.Strategy | None:
    """TensorFlow's own distribution engine: every local device (mirrored) or every TF_CONFIG worker (multi_worker)."""
    if settings.distribute == "none":
        return None
    if settings.distribute == "mirrored":
        return tf.distribute.MirroredStrategy()
    cluster.tf_config()  # a clear error before TensorFlow waits for workers that will never come
    if settings.loader != "keras":
        raise PipelineError("train.distribute: multi_worker needs train.loader: keras (tf.data shards the input per worker)")
    ring = tf.distribute.experimental.CommunicationOptions(implementation=tf.distribute.experimental.CommunicationImplementation.RING)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=ring)


def keras_dataset(folder: Path, names: list[str], settings: TrainSettings, shuffle: bool, cache_file: Path) -> tf.data.Dataset:
    dataset = keras.utils.image_dataset_from_directory(
        folder,
        labels="inferred",
        label_mode="int",
        class_names=names,
        color_mode="rgb",
        batch_size=None,
        image_size=(settings.image_size, settings.image_size),
        shuffle=False,
        interpolation="bilinear",
        verbose=False,
    ).cache(str(cache_file))
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=settings.seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA  # one image folder: shard elements
    return dataset.batch(settings.batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)


def data_for(processed: Path, split: str, names: list[str], settings: TrainSettings, shuffle: bool, scratch: Path) -> tf.data.Dataset | OpenCVBatches:
    if settings.loader == "keras":
        return keras_dataset(processed / split, names, settings, shuffle, scratch / f"{split}.cache")
    return OpenCVBatches(loader.image_set(processed, split, names), settings, shuffle, scratch / f"{split}.npy")


def fit(
    processed: Path, names: list[str], settings: TrainSettings, callbacks: list[keras.callbacks.Callback], backup: Path
) -> tuple[keras.Model, dict]:
    """Train (and fine-tune, for backbones); return the model and a summary of what ran.

    Every epoch is backed up under `backup` (weights and epoch, Keras' BackupAndRestore), so a killed run
    resumes where it stopped; the caller deletes `backup` once the model is saved.
    """
    configure(settings)
    strategy = strategy_for(settings)
    replicas = strategy.num_replicas_in_sync if strategy else 1
    per_step = settings.model_copy(update={"batch_size": settings.batch_size * replicas})  # batch_size is per replica
    train_labels = loader.image_set(processed, "train", names).labels
    has_val = (processed / "val").is_dir()
    weights = None
    if settings.class_weight == "balanced":
        values = compute_class_weight("balanced", classes=np.arange(len(names)), y=train_labels)
        weights = {index: float(value) for index, value in enumerate(values)}
    if strategy:
        print(
            f"train: {settings.distribute}: {replicas} replica(s) in sync, global batch {per_step.batch_size}, "
            f"{math.ceil(len(train_labels) / per_step.batch_size)} steps per epoch"
        )
    with strategy.scope() if strategy else nullcontext(), tempfile.TemporaryDirectory(prefix="train-cache-") as scratch:
        model, backbone = models.build_model(settings, len(names))
        train = data_for(processed, "train", names, per_step, True, Path(scratch))
        unfrozen = 0
        if settings.distribute == "multi_worker":  # Keras' fit cannot run under MultiWorkerMirroredStrategy: our loop
            has_val = False  # no early stopping: every worker runs the same epochs
            with corrupt_images_named([processed / "train"]):
                epochs_run = distributed.fit(strategy, model, train, len(train_labels), settings, weights, callbacks, backup)
        else:
            if has_val:
                callbacks = [*callbacks, keras.callbacks.EarlyStopping("val_loss", patience=settings.early_stopping_patience, restore_best_weights=True)]
            val = data_for(processed, "val", names, per_step, False, Path(scratch)) if has_val else None
            phase = Phase(model, train, val, weights, callbacks, backup)
            with corrupt_images_named([processed / "train", *([processed / "val"] if has_val else [])]):
                epochs_run = phase.run("train", settings.learning_rate, 0, settings.epochs)
                if backbone is not None and settings.fine_tune_layers > 0 and settings.fine_tune_epochs > 0:
                    unfrozen = models.unfreeze_top(backbone, settings.fine_tune_layers)
                    epochs_run += phase.run("fine_tune", settings.fine_tune_learning_rate, epochs_run, epochs_run + settings.fine_tune_epochs)
    summary = {"epochs": epochs_run, "unfrozen_layers": unfrozen, "class_weight": weights, "early_stopping": has_val}
    if strategy:
        summary |= {"distribute": settings.distribute, "replicas": replicas, "global_batch": per_step.batch_size}
    return model, summary


class Phase:
    """One `model.fit` call that survives a kill: per-epoch backups, and a marker with its weights once done."""

    def __init__(self, model: keras.Model, train: object, val: object, class_weight: dict | None, callbacks: list, backup: Path) -> None:
        self.model, self.train, self.val, self.class_weight, self.callbacks, self.backup = model, train, val, class_weight, callbacks, backup

    def run(self, name: str, learning_rate: float, first_epoch: int, last_epoch: int) -> int:
        """Train epochs [first_epoch, last_epoch) (fewer if stopped early); return how many the phase ran in all."""
        done, final_weights, checkpoints = self.backup / f"{name}.done.json", self.backup / f"{name}.weights.h5", self.backup / name
        if done.is_file():  # finished before the kill: its weights, not a rerun
            self.model.load_weights(final_weights)
            print(f"{name}: finished in an earlier, interrupted run; restored its weights")
            return json.loads(done.read_text())["epochs"]
        resumed = resume.phase_epochs(self.backup, name)
        if resumed is not None:
            print(f"{name}: resuming after epoch {resumed} of {last_epoch} (backup in {checkpoints})")
        self.model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        keep = keras.callbacks.BackupAndRestore(str(checkpoints), double_checkpoint=True, delete_checkpoint=False)
        self.model.fit(
            self.train, validation_data=self.val, initial_epoch=first_epoch, epochs=last_epoch, class_weight=self.class_weight,
            callbacks=[*self.callbacks, keep], verbose=1 if sys.stdout.isatty() else 2,
        )
        reached = resume.phase_epochs(self.backup, name) or first_epoch
        self.model.save_weights(final_weights)
        write_json(done, {"epochs": reached - first_epoch, "last_epoch": reached})
        return reached - first_epoch


def predict_proba(model_file: Path, processed: Path, split: str, names: list[str], settings: TrainSettings) -> np.ndarray:
    """Class probabilities for one split, in the processed manifest's row order, read by the configured loader."""
    configure(settings)
    model = keras.saving.load_model(model_file)
    images = loader.image_set(processed, split, names)
    if settings.loader == "opencv":
        return model.predict(OpenCVBatches(images, settings, shuffle=False), verbose=0)
    dataset = keras.utils.image_dataset_from_directory(
        processed / split, labels="inferred", label_mode="int", class_names=names, color_mode="rgb", batch_size=settings.batch_size,
        image_size=(settings.image_size, settings.image_size), shuffle=False, interpolation="bilinear", verbose=False,
    )
    row_of = {Path(path).resolve(): row for row, path in enumerate(dataset.file_paths)}
    with corrupt_images_named([processed / split]):
        probabilities = model.predict(dataset.prefetch(tf.data.AUTOTUNE), verbose=0)
    return probabilities[[row_of[path.resolve()] for path in images.paths]]
