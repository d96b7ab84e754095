"""evaluate@<ds>: score the trained model on the test split; headline metrics, a report for readers, and plots.

metrics/<ds>/eval.json holds the headline numbers, with the same keys for every dataset (declared metrics).
metrics/<ds>/eval_report.json holds the detail: confidence intervals and how they were made, the operating
point and its rates (at the chosen threshold and at 0.5), per-class scores, calibration bins, and the scores per
subgroup where the test images fall in two or more: original split, grey or colour, and a label table's
labels.metadata columns (sex, site; ages in bands of ten years). metrics/<ds>/test_predictions.csv holds each test
image's truth, decision and probabilities (for comparing two runs). Plots under plots/<ds>/: confusion.csv
(counts and normalized), roc.csv and precision_recall.csv (one-vs-rest, per class), calibration.csv (reliability
diagram), misclassified.png, and gradcam.png (Grad-CAM overlays, Keras models).

    python -m stages.evaluate chest_xray
"""

from __future__ import annotations

import logging

from medimage import manifest
from medimage.atomic import spreadsheet_cell, write_csv
from medimage.modelling.families import load_classifier
from medimage.modelling.prepared import prepared_sets
from medimage.paths import (
    CALIBRATION,
    CONFUSION,
    GRADCAM,
    INTERIM_DIR,
    MISCLASSIFIED,
    MODELS_DIR,
    PLOTS_DIR,
    PRECISION_RECALL,
    ROC,
    TEST_PREDICTIONS,
    metrics_file,
)
from medimage.reporting import multi_label
from medimage.reporting.clinical import (
    accuracy,
    assess,
    operating_point,
    prediction_rows,
    subgroup_value,
    subgroups,
)
from medimage.reporting.galleries import caption, gallery, most_confident_mistakes, saliency_gallery
from medimage.reporting.metrics_files import write_metrics
from medimage.reporting.plot_data import class_tasks, confusion_rows, precision_recall_rows, roc_rows
from medimage.reporting.sheets import thumbnail, write_png
from medimage.settings.evaluate import EvaluateParams
from medimage.settings.split import SplitEntry
from medimage.splitting.view import dataset_view
from stages.cli import run_stage

GALLERY_SIZE = 12
log = logging.getLogger(__name__)


def main(params: EvaluateParams, dataset: SplitEntry) -> None:
    classifier = load_classifier(MODELS_DIR / dataset.name, params.train)  # once: scores every split and Grad-CAM
    names = classifier.class_names
    _, rows = dataset_view(params.split, dataset)  # the view checked (the galleries read its files), the manifest once
    test, val, train = prepared_sets(dataset.name, rows, names, classifier.image_size, ("test", "val", "train"))
    test_probabilities = classifier.split_probabilities(test)
    val_probabilities = classifier.split_probabilities(val) if len(val) else None
    train_probabilities = classifier.split_probabilities(train)
    test_rows = [row for row in rows if row.split == "test"]  # the order of `test`
    paths = [row.path for row in test_rows]
    plots = PLOTS_DIR / dataset.name
    if classifier.multi_label:
        point = multi_label.label_thresholds(val, val_probabilities, params.evaluate)
        train_accuracy = multi_label.known_accuracy(train.labels, point.decide(train_probabilities))
        headline, report, calibration = multi_label.assess_multi_label(
            test, test_probabilities, point, train_accuracy, params.evaluate
        )
        by_subgroup = {
            "accuracy": lambda truth, drawn: multi_label.known_accuracy(truth, point.decide(drawn)),
            "roc_auc": multi_label.macro_auc,
        }
        predictions = multi_label.prediction_rows(test, test_probabilities, point, paths)
        confusion = multi_label.confusion_rows(test.labels, point.decide(test_probabilities), names)
        tasks = multi_label.label_tasks(test.labels, test_probabilities, names)
        mistakes, gradcam = multi_label.galleries(classifier, test, test_probabilities, point, GALLERY_SIZE)
    else:
        point = operating_point(val, val_probabilities, len(names), params.evaluate)
        train_accuracy = accuracy(train.labels, point.decide(train_probabilities))
        headline, report, calibration = assess(test, test_probabilities, point, train_accuracy, params.evaluate)
        by_subgroup = None
        predictions = prediction_rows(test, test_probabilities, point, paths)
        predicted = point.decide(test_probabilities)
        confusion = confusion_rows(test.labels, predicted, names)
        tasks = class_tasks(test.labels, test_probabilities, names)
        chosen = most_confident_mistakes(test.labels, test_probabilities, predicted, GALLERY_SIZE)
        tiles = [thumbnail(test.paths[i], *test.sizes[i]) for i in chosen]
        captions = [caption(names, test.labels[i], predicted[i], test_probabilities[i]) for i in chosen]
        mistakes = gallery(tiles, captions, empty="no misclassified test images")
        gradcam = saliency_gallery(classifier, test, test_probabilities, predicted)
    attributes = {
        "original split": [row.source_split for row in test_rows],
        "colour": ["grey" if row.channels == 1 else "colour" for row in test_rows],
    }
    metadata = manifest.read_metadata(INTERIM_DIR / dataset.name)  # a label table's sex, age, site, ...
    for column in next(iter(metadata.values()), {}):
        # metadata.csv is written for spreadsheets: its paths as spreadsheet_cell made them
        cells = [metadata.get(spreadsheet_cell(row.interim_path), {}).get(column, "") for row in test_rows]
        attributes[column] = [subgroup_value(column, cell) for cell in cells]
    report["subgroups"] = subgroups(test, test_probabilities, point, attributes, params.evaluate, by_subgroup)
    write_metrics(dataset.name, "eval", headline | report, list(headline))
    columns = ["path", "label", "predicted", "group"]
    columns += [f"y_{name}" for name in names] if classifier.multi_label else []
    columns += [f"p_{name}" for name in names]
    write_csv(metrics_file(dataset.name, TEST_PREDICTIONS), columns, predictions, spreadsheet=True)
    write_csv(plots / CONFUSION, ["actual", "predicted"], confusion, spreadsheet=True)
    write_csv(plots / ROC, ["class", "fpr", "tpr"], roc_rows(tasks))
    write_csv(plots / PRECISION_RECALL, ["class", "recall", "precision"], precision_recall_rows(tasks))
    write_csv(plots / CALIBRATION, ["bin", "confidence", "accuracy", "images"], calibration)
    write_png(plots / MISCLASSIFIED, mistakes)
    write_png(plots / GRADCAM, gradcam)
    low, high = headline["roc_auc_ci_low"], headline["roc_auc_ci_high"]
    log.info(
        "test accuracy %s, balanced %s, ROC AUC %s (95%% CI %s-%s), sensitivity %s, specificity %s at %s",
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
    run_stage("evaluate", main, __doc__, (EvaluateParams, SplitEntry))
