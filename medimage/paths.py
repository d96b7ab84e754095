"""Where each stage reads and writes (the README's layout), relative to the project root."""

from __future__ import annotations

from pathlib import Path

RAW_DIR = Path("data/raw")
INTERIM_DIR = Path("data/interim")
PROCESSED_DIR = Path("data/processed")
PIXELS_DIR = Path("data/pixels")  # <ds>/<split>.npy: the training-size pixels (medimage/modelling/prepared.py)
MODELS_DIR = Path("models")
METRICS_DIR = Path("metrics")
PLOTS_DIR = Path("plots")
REPORTS_DIR = Path("reports")
TEMPORARIES = Path(".cache/temporaries")  # the journal of temporaries being written (medimage/atomic.py)
MANIFEST = "manifest.csv"
SKIPPED = "skipped.csv"
METADATA = "metadata.csv"  # data/interim/<ds>/: per image, the label table's labels.metadata columns
# data/interim/<ds>/originals/: the originals an augmented archive ships (registry key sources), own manifest.csv
ORIGINALS = "originals"
LABELS = "labels.json"
TRAIN_SUMMARY = "train.json"
KERAS_MODEL = "model.keras"


def raw_archive(dataset: str) -> Path:
    return RAW_DIR / f"{dataset}.zip"


def metrics_file(dataset: str, name: str) -> Path:
    return METRICS_DIR / dataset / name
