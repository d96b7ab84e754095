"""train@<ds>: fit the configured model on the train split; write models/<ds>/ and training curves.

The images are read from data/pixels/<ds>/ (stage pixels: every split decoded once at train.image_size), in the
order and with the labels of split's manifest, data/processed/<ds>/manifest.csv; no image file is opened.

models/<ds>/ holds model.keras (or model.joblib for sklearn_linear), labels.json (class names in index
order) and train.json (what ran). Per-epoch loss and accuracy (train and val) are logged with DVCLive
under plots/<ds>/training/. TensorFlow is imported only for the Keras models.

A killed run resumes: every epoch is backed up in models/.resume-<ds>/ (weights, epoch, curves so far),
kept only while it matches the train params and the processed data, and deleted once the model is saved.
DVC deletes a stage's outputs before it reruns, so the backup lives beside the output, not inside it.

With train.distribute: multi_worker, run the same command on every worker with its TF_CONFIG; only the
chief (worker 0) writes models/<ds>/ and the curves, under `dvc repro` on the chief's machine.

    python -m stages.train chest_xray
"""

from __future__ import annotations

import json
import logging
import shutil

from dvclive import Live

from medimage import manifest
from medimage.atomic import atomic_dir
from medimage.modelling import cluster, resume
from medimage.modelling.determinism import pin_cpu_kernels
from medimage.modelling.opencv_loader import ImageSet
from medimage.modelling.prepared import prepared_sets
from medimage.modelling.training import trainer_of
from medimage.paths import LABELS, MODELS_DIR, PLOTS_DIR, PROCESSED_DIR, TRAIN_SUMMARY
from medimage.settings.files import DatasetEntry
from medimage.settings.train import TrainParams
from stages.cli import run_stage

log = logging.getLogger(__name__)


def train_and_val(params: TrainParams, dataset: DatasetEntry) -> tuple[ImageSet, ImageSet | None]:
    """The train split and the val split (None where empty), with their prepared pixels; the manifest read once."""
    rows = manifest.read_processed(PROCESSED_DIR / dataset.name)
    names = manifest.class_names(rows)
    train, val = prepared_sets(dataset.name, rows, names, params.train.image_size, ("train", "val"))
    return train, val if len(val) else None


def train_as_worker(params: TrainParams, dataset: DatasetEntry) -> None:
    """A non-chief multi_worker task: trains in step with the chief, keeps its own backup, writes no output."""
    from medimage.modelling import fitting

    settings = params.train
    train, _ = train_and_val(params, dataset)
    backup = MODELS_DIR / f".resume-{dataset.name}-{cluster.task_name(settings.distribute)}"
    resume.prepare(backup, resume.fingerprint(settings, PROCESSED_DIR / dataset.name))
    _, summary = fitting.fit(train, None, settings, [], backup)
    shutil.rmtree(backup)
    log.info(
        "%s done, %d epoch(s); the chief writes the model", cluster.task_name(settings.distribute), summary["epochs"]
    )


def main(params: TrainParams, dataset: DatasetEntry) -> None:
    settings = params.train
    pin_cpu_kernels(settings.deterministic, settings.mixed_precision)
    if not cluster.is_chief(settings.distribute):
        train_as_worker(params, dataset)
        return
    train, val = train_and_val(params, dataset)
    names = train.class_names
    backup = MODELS_DIR / f".resume-{dataset.name}"
    resuming = resume.prepare(backup, resume.fingerprint(settings, PROCESSED_DIR / dataset.name))
    curves = backup / "training"
    resume.trim_curves(curves, resume.epochs_completed(backup))
    with (
        atomic_dir(MODELS_DIR / dataset.name) as staging,
        Live(str(curves), resume=resuming, save_dvc_exp=False, dvcyaml=None, report=None) as live,
    ):
        live.step = resume.epochs_completed(backup)
        summary = trainer_of(settings.model)(train, val, settings, live, backup, staging)
        (staging / LABELS).write_text(json.dumps(names, indent=2) + "\n")
        run = {"model": settings.model, "loader": settings.loader, "image_size": settings.image_size, **summary}
        (staging / TRAIN_SUMMARY).write_text(json.dumps(run, indent=2) + "\n")
    with atomic_dir(PLOTS_DIR / dataset.name / "training") as published:
        shutil.copytree(curves / "plots", published / "plots")  # only the declared plots: nothing untracked beside them
    shutil.rmtree(backup)
    log.info(
        "%s (%s loader), %d epoch(s) -> %s",
        settings.model,
        settings.loader,
        summary["epochs"],
        MODELS_DIR / dataset.name,
    )


if __name__ == "__main__":
    run_stage("train", main, __doc__, (TrainParams, DatasetEntry))
