"""evaluate@<ds>: score the trained model on the test split; headline metrics, a report for readers, and plots.

metrics/<ds>/eval.json holds the headline numbers, with the same keys for every dataset (declared metrics).
metrics/<ds>/eval_report.json holds the detail: confidence intervals and how they were made, the operating
point and its rates (at the chosen threshold and at 0.5), per-class scores, calibration bins. Plots:
confusion.csv, roc.csv, calibration.csv (reliability diagram) and misclassified.png under plots/<ds>/.

    python -m stages.evaluate chest_xray
"""

from __future__ import annotations

import json
import logging

from medimage.atomic import atomic_file, write_csv
from medimage.errors import PipelineError
from medimage.modelling import opencv_loader
from medimage.modelling.prediction import predict
from medimage.params import DatasetSpec, Params
from medimage.paths import LABELS, MODELS_DIR, PLOTS_DIR, PROCESSED_DIR
from medimage.reporting.clinical import assess
from medimage.reporting.galleries import gallery, most_confident_mistakes
from medimage.reporting.metrics_files import write_metrics
from medimage.reporting.plot_data import confusion_rows, roc_rows
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
    val = opencv_loader.image_set(processed, "val", names)
    test_probabilities = predict(model_dir, processed, "test", names, settings)
    train_accuracy = float(
        (predict(model_dir, processed, "train", names, settings).argmax(axis=1) == train.labels).mean()
    )
    val_probabilities = predict(model_dir, processed, "val", names, settings) if len(val) else None
    headline, report, calibration = assess(
        test, test_probabilities, val, val_probabilities, train_accuracy, params.evaluate
    )
    write_metrics(dataset.name, "eval", headline | report, list(headline))

    plots = PLOTS_DIR / dataset.name
    write_csv(plots / "confusion.csv", ["actual", "predicted"], confusion_rows(test.labels, test_probabilities, names))
    write_csv(plots / "roc.csv", ["fpr", "tpr"], roc_rows(test.labels, test_probabilities))
    write_csv(plots / "calibration.csv", ["bin", "confidence", "accuracy", "images"], calibration)
    mistakes = most_confident_mistakes(test.labels, test_probabilities, GALLERY_SIZE)
    predicted, confidence = test_probabilities.argmax(axis=1), test_probabilities.max(axis=1)
    captions = [f"true {names[test.labels[i]]}\npredicted {names[predicted[i]]} {confidence[i]:.2f}" for i in mistakes]
    picture = gallery([test.paths[i] for i in mistakes], [test.sizes[i] for i in mistakes], captions)
    with atomic_file(plots / "misclassified.png") as temporary:
        temporary.write_bytes(png_bytes(picture))
    low, high = headline["roc_auc_ci_low"], headline["roc_auc_ci_high"]
    log.info(
        "test accuracy %.3f, balanced %.3f, ROC AUC %s (95%% CI %s-%s), sensitivity %s, specificity %s at %s",
        headline["accuracy"],
        headline["balanced_accuracy"],
        headline["roc_auc"],
        low,
        high,
        headline["sensitivity"],
        headline["specificity"],
        report["operating_point"]["rule"],
    )


if __name__ == "__main__":
    run_stage("evaluate", main, __doc__)
