"""evaluate@<ds>: score the trained model on the test split; write metrics/<ds>/eval.json and plots.

plots/<ds>/confusion.csv (DVC's confusion template), plots/<ds>/roc.csv (micro-averaged ROC curve) and
plots/<ds>/misclassified.png (the most confidently misclassified test images, true and predicted labels).

    python -m stages.evaluate chest_xray
"""

from __future__ import annotations

import json
import logging

from medimage.atomic import atomic_file, write_csv, write_json
from medimage.errors import PipelineError
from medimage.modelling import opencv_loader
from medimage.modelling.prediction import predict
from medimage.params import DatasetSpec, Params
from medimage.paths import LABELS, MODELS_DIR, PLOTS_DIR, PROCESSED_DIR, metrics_file
from medimage.reporting.galleries import gallery, most_confident_mistakes
from medimage.reporting.plot_data import confusion_rows, roc_rows
from medimage.reporting.scores import classification_metrics
from medimage.reporting.sheets import png_bytes
from stages.cli import run_stage

GALLERY_SIZE = 12
log = logging.getLogger(__name__)


def main(params: Params, dataset: DatasetSpec) -> None:
    settings = params.train
    model_dir, processed = MODELS_DIR / dataset.name, PROCESSED_DIR / dataset.name
    if not (model_dir / LABELS).is_file():
        raise PipelineError(f"{model_dir / LABELS} not found: run train first (dvc repro train@{dataset.name})")
    names = json.loads((model_dir / LABELS).read_text())
    test = opencv_loader.image_set(processed, "test", names)
    train = opencv_loader.image_set(processed, "train", names)
    test_probabilities = predict(model_dir, processed, "test", names, settings)
    train_accuracy = float(
        (predict(model_dir, processed, "train", names, settings).argmax(axis=1) == train.labels).mean()
    )
    metrics = classification_metrics(test.labels, test_probabilities, names, train_accuracy)
    write_json(metrics_file(dataset.name, "eval.json"), metrics)

    plots = PLOTS_DIR / dataset.name
    write_csv(plots / "confusion.csv", ["actual", "predicted"], confusion_rows(test.labels, test_probabilities, names))
    write_csv(plots / "roc.csv", ["fpr", "tpr"], roc_rows(test.labels, test_probabilities))
    mistakes = most_confident_mistakes(test.labels, test_probabilities, GALLERY_SIZE)
    predicted = test_probabilities.argmax(axis=1)
    confidence = test_probabilities.max(axis=1)
    captions = [f"true {names[test.labels[i]]}\npredicted {names[predicted[i]]} {confidence[i]:.2f}" for i in mistakes]
    picture = gallery([test.paths[i] for i in mistakes], [test.sizes[i] for i in mistakes], captions)
    with atomic_file(plots / "misclassified.png") as temporary:
        temporary.write_bytes(png_bytes(picture))
    log.info(
        "test accuracy %.3f, balanced %.3f, macro F1 %.3f, ROC AUC %s, train accuracy %.3f",
        metrics["accuracy"],
        metrics["balanced_accuracy"],
        metrics["macro_f1"],
        metrics["roc_auc"],
        metrics["train_accuracy"],
    )


if __name__ == "__main__":
    run_stage("evaluate", main, __doc__)
