"""Where each stage reads and writes (the README's outputs table), relative to the project root: every output's
name is defined here once, for its writer and its readers."""

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
# metrics/<ds>/: each stage's declared metrics (`declared_metrics`) and its report (`metrics_report`), and these
TEST_PREDICTIONS = "test_predictions.csv"  # evaluate: each test image's truth, decision and probabilities
# plots/<ds>/: evaluate's plot rows and pictures, and split's sample sheet
CONFUSION, ROC, PRECISION_RECALL, CALIBRATION = "confusion.csv", "roc.csv", "precision_recall.csv", "calibration.csv"
MISCLASSIFIED, GRADCAM, SPLIT_SAMPLES = "misclassified.png", "gradcam.png", "split_samples.png"


def raw_archive(dataset: str) -> Path:
    return RAW_DIR / f"{dataset}.zip"


def metrics_file(dataset: str, name: str) -> Path:
    return METRICS_DIR / dataset / name


def declared_metrics(stage: str) -> str:
    """The few headline numbers DVC compares: metrics/<ds>/<stage>.json (`eval` for evaluate)."""
    return f"{stage}.json"


def metrics_report(stage: str) -> str:
    """Everything else a stage measured, for people: metrics/<ds>/<stage>_report.json."""
    return f"{stage}_report.json"
