"""evaluate@<ds>: score the trained model on the test split; write metrics/<ds>/eval.json and plots.

plots/<ds>/confusion.csv (DVC's confusion template), plots/<ds>/roc.csv (micro-averaged ROC curve) and
plots/<ds>/misclassified.png (the most confidently misclassified test images, true and predicted labels).

    python -m stages.evaluate chest_xray
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np

from stages import evaluation, linear, loader
from stages.atomic import atomic_file, write_json
from stages.cli import run_stage
from stages.config import DatasetSpec, Params, TrainSettings
from stages.errors import PipelineError
from stages.paths import KERAS_MODEL, LABELS, MODELS_DIR, PLOTS_DIR, PROCESSED_DIR, metrics_file

GALLERY_SIZE = 12


def predict(model_dir: Path, processed: Path, split: str, names: list[str], settings: TrainSettings) -> np.ndarray:
    if settings.model == "sklearn_linear":
        return linear.predict_proba(model_dir, loader.image_set(processed, split, names), settings)
    from stages import training

    return training.predict_proba(model_dir / KERAS_MODEL, processed, split, names, settings)


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with atomic_file(path) as temporary, temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(params: Params, dataset: DatasetSpec) -> None:
    settings = params.train
    model_dir, processed = MODELS_DIR / dataset.name, PROCESSED_DIR / dataset.name
    if not (model_dir / LABELS).is_file():
        raise PipelineError(f"{model_dir / LABELS} not found: run train first (dvc repro train@{dataset.name})")
    names = json.loads((model_dir / LABELS).read_text())
    test, train = loader.image_set(processed, "test", names), loader.image_set(processed, "train", names)
    test_probabilities = predict(model_dir, processed, "test", names, settings)
    train_accuracy = float((predict(model_dir, processed, "train", names, settings).argmax(axis=1) == train.labels).mean())
    metrics = evaluation.classification_metrics(test.labels, test_probabilities, names, train_accuracy)
    write_json(metrics_file(dataset.name, "eval.json"), metrics)

    plots = PLOTS_DIR / dataset.name
    write_csv(plots / "confusion.csv", evaluation.confusion_rows(test.labels, test_probabilities, names), ["actual", "predicted"])
    write_csv(plots / "roc.csv", evaluation.roc_rows(test.labels, test_probabilities), ["fpr", "tpr"])
    mistakes = evaluation.most_confident_mistakes(test.labels, test_probabilities, GALLERY_SIZE)
    captions = [
        f"true {names[test.labels[i]]}\npredicted {names[test_probabilities[i].argmax()]} {test_probabilities[i].max():.2f}" for i in mistakes
    ]
    picture = evaluation.gallery([test.paths[i] for i in mistakes], [test.sizes[i] for i in mistakes], captions)
    with atomic_file(plots / "misclassified.png") as temporary:
        temporary.write_bytes(cv2.imencode(".png", picture)[1].tobytes())
    print(
        f"evaluate {dataset.name}: test accuracy {metrics['accuracy']:.3f}, balanced {metrics['balanced_accuracy']:.3f}, "
        f"macro F1 {metrics['macro_f1']:.3f}, ROC AUC {metrics['roc_auc']}, train accuracy {metrics['train_accuracy']:.3f}"
    )


if __name__ == "__main__":
    run_stage("evaluate", main, __doc__)
