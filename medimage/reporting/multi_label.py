"""Scores of a multi-label set (several labels per image, each 1, 0 or unknown), label by label. No TensorFlow.

Every label is a binary task of its own, scored only on the images whose value of it is known (an unknown value
is never taken for a negative). Each label gets its own threshold, chosen on val by the rule binary sets use
(Youden's J, or evaluate.target_sensitivity), and the headline keys every dataset shares mean:
- `roc_auc`: the macro mean over labels of each label's ROC AUC (labels without a positive and a negative known
  in test left out), its interval by the same patient bootstrap as single-label sets;
- `accuracy`: the share of known (image, label) values decided right at the labels' thresholds;
- `balanced_accuracy`, `sensitivity`, `specificity`, `macro_f1`: macro means over labels, at their thresholds;
- `ece`: the mean over labels of each label's expected calibration error (its probability against how often it
  is present, in equal-width bins); `brier`: the mean squared error over known values;
- `threshold`: null (there is one per label, in the report).
Per label (the report): prevalence, ROC AUC and PR AUC (average precision) with intervals, sensitivity,
specificity, PPV, NPV and F1 at its threshold, and its ECE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_curve

from medimage.modelling.classifier import Classifier
from medimage.modelling.opencv_loader import ImageSet, load_image
from medimage.reporting.clinical import (
    Metric,
    bootstrap,
    expected_calibration_error,
    reliability_rows,
    resampling_units,
)
from medimage.reporting.galleries import gallery
from medimage.reporting.plot_data import Task
from medimage.reporting.scores import known, label_auc, macro_auc
from medimage.reporting.sheets import thumbnail
from medimage.settings.evaluate import EvaluateSettings


def label_average_precision(labels: np.ndarray, probabilities: np.ndarray, column: int) -> float | None:
    rows = known(labels, column)
    truth = labels[rows, column] == 1
    if not truth.any() or truth.all():
        return None
    return float(average_precision_score(truth, probabilities[rows, column]))


@dataclass(frozen=True)
class LabelThresholds:
    """A threshold per label, chosen on val; decisions are probability >= threshold, label by label."""

    thresholds: list[float]
    rules: list[str]

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        return probabilities >= np.asarray(self.thresholds)[None, :]


def youden(truth: np.ndarray, scores: np.ndarray) -> float:
    fpr, tpr, thresholds = roc_curve(truth, scores)
    finite = np.isfinite(thresholds)
    return float(thresholds[int(np.argmax(np.where(finite, tpr - fpr, -np.inf)))])


def for_sensitivity(truth: np.ndarray, scores: np.ndarray, target: float) -> float:
    positives = np.sort(scores[truth])[::-1]
    return float(positives[max(int(np.ceil(target * len(positives))), 1) - 1])


def label_thresholds(
    val: ImageSet, val_probabilities: np.ndarray | None, settings: EvaluateSettings
) -> LabelThresholds:
    """Each label's threshold on val, by the rule single-label binary sets use; 0.5 where val lacks a known
    positive or negative of that label."""
    thresholds, rules = [], []
    for column in range(len(val.class_names)):
        rows = known(val.labels, column) if val_probabilities is not None else np.zeros(0, bool)
        truth = val.labels[rows, column] == 1 if len(rows) else np.zeros(0, bool)
        if not truth.any() or truth.all():
            thresholds.append(0.5)
            rules.append("0.5 (val holds no known positive and negative of this label)")
            continue
        scores = val_probabilities[rows, column]
        if settings.target_sensitivity is not None:
            thresholds.append(round(for_sensitivity(truth, scores, settings.target_sensitivity), 4))
            rules.append(f"highest threshold with sensitivity >= {settings.target_sensitivity:g} on val")
        else:
            thresholds.append(round(youden(truth, scores), 4))
            rules.append("Youden's J (sensitivity + specificity - 1) maximal on val")
    return LabelThresholds(thresholds, rules)


def ratio(top: int, bottom: int) -> float | None:
    return round(top / bottom, 4) if bottom else None


def label_rates(truth: np.ndarray, decided: np.ndarray) -> dict[str, float | None]:
    """Sensitivity, specificity, PPV, NPV and F1 of one label's decisions on its known images."""
    tp, fn = int(np.sum(truth & decided)), int(np.sum(truth & ~decided))
    tn, fp = int(np.sum(~truth & ~decided)), int(np.sum(~truth & decided))
    return {
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
    }


def per_label_rates(labels: np.ndarray, decided: np.ndarray) -> list[dict[str, float | None]]:
    found = []
    for column in range(labels.shape[1]):
        rows = known(labels, column)
        found.append(label_rates(labels[rows, column] == 1, decided[rows, column]))
    return found


def mean_of(values: Sequence[float | None]) -> float | None:
    defined = [value for value in values if value is not None]
    return round(float(np.mean(defined)), 4) if defined else None


def known_accuracy(labels: np.ndarray, decided: np.ndarray) -> float | None:
    """The share of known (image, label) values decided right."""
    mask = ~np.isnan(labels)
    return float(np.mean(decided[mask] == (labels[mask] == 1))) if mask.any() else None


def balanced(rates: Sequence[dict[str, float | None]]) -> float | None:
    """The macro mean over labels of (sensitivity + specificity) / 2, over labels where both are defined."""
    pairs = [(row["sensitivity"], row["specificity"]) for row in rates]
    return mean_of([(a + b) / 2 if a is not None and b is not None else None for a, b in pairs])


def assess_multi_label(
    test: ImageSet,
    probabilities: np.ndarray,
    point: LabelThresholds,
    train_accuracy: float | None,
    settings: EvaluateSettings,
) -> tuple[dict, dict, list[dict]]:
    """Headline metrics (the keys every dataset has), the per-label report, and every label's reliability rows."""
    labels, names = test.labels, test.class_names
    decided = point.decide(probabilities)
    rates = per_label_rates(labels, decided)
    resamples, level, seed = settings.bootstrap_resamples, settings.confidence_level, settings.seed

    def label_metric(column: int, score: object) -> Metric:
        return lambda truth, drawn: score(truth, drawn, column)

    def at_thresholds(score: object) -> Metric:
        return lambda truth, drawn: score(per_label_rates(truth, point.decide(drawn)))

    statistics: dict[str, Metric] = {
        "roc_auc": macro_auc,
        "accuracy": lambda truth, drawn: known_accuracy(truth, point.decide(drawn)),
        "balanced_accuracy": at_thresholds(balanced),
        "sensitivity": at_thresholds(lambda rates: mean_of([row["sensitivity"] for row in rates])),
        "specificity": at_thresholds(lambda rates: mean_of([row["specificity"] for row in rates])),
    }
    for column in range(len(names)):
        statistics[f"roc_auc {column}"] = label_metric(column, label_auc)
        statistics[f"pr_auc {column}"] = label_metric(column, label_average_precision)
    intervals = bootstrap(statistics, labels, probabilities, test.groups, resamples, level, seed)
    per_label: dict[str, dict] = {}
    for column, name in enumerate(names):
        rows = known(labels, column)
        truth = labels[rows, column]
        reliability = reliability_rows(probabilities[rows, column], truth, settings.calibration_bins)
        auc, pr = label_auc(labels, probabilities, column), label_average_precision(labels, probabilities, column)
        per_label[name] = {
            "positive": int(np.sum(truth == 1)),
            "negative": int(np.sum(truth == 0)),
            "unknown": int(np.sum(~rows)),
            "prevalence": ratio(int(np.sum(truth == 1)), int(rows.sum())),
            "threshold": point.thresholds[column],
            "roc_auc": None if auc is None else round(auc, 4),
            "roc_auc_ci": [intervals[f"roc_auc {column}"]["low"], intervals[f"roc_auc {column}"]["high"]],
            "pr_auc": None if pr is None else round(pr, 4),
            "pr_auc_ci": [intervals[f"pr_auc {column}"]["low"], intervals[f"pr_auc {column}"]["high"]],
            **rates[column],
            "ece": expected_calibration_error(reliability),
        }
    auc, accuracy = macro_auc(labels, probabilities), known_accuracy(labels, decided)
    mask = ~np.isnan(labels)
    headline = {
        "threshold": None,
        "accuracy": None if accuracy is None else round(accuracy, 4),
        "balanced_accuracy": balanced(rates),
        "macro_f1": mean_of([row["f1"] for row in rates]),
        "roc_auc": None if auc is None else round(auc, 4),
        "roc_auc_ci_low": intervals["roc_auc"]["low"],
        "roc_auc_ci_high": intervals["roc_auc"]["high"],
        "sensitivity": mean_of([row["sensitivity"] for row in rates]),
        "specificity": mean_of([row["specificity"] for row in rates]),
        "ece": mean_of([row["ece"] for row in per_label.values()]),
        "brier": round(float(np.mean((probabilities[mask] - labels[mask]) ** 2)), 4) if mask.any() else None,
        "train_accuracy": None if train_accuracy is None else round(train_accuracy, 4),
        "generalization_gap": None
        if train_accuracy is None or accuracy is None
        else round(train_accuracy - accuracy, 4),
    }
    units = len(resampling_units(test.groups))
    calibration = reliability_rows(probabilities[mask], labels[mask], settings.calibration_bins)  # every label
    report = {
        "test_images": len(test),
        "classes": names,
        "multi_label": True,
        "operating_point": {
            "rule": "a threshold per label, chosen on val: " + sorted(set(point.rules), key=point.rules.index)[0],
            "threshold": None,
            "thresholds": dict(zip(names, point.thresholds, strict=True)),
        },
        "confidence_intervals": {
            "method": f"percentile bootstrap, {resamples} resamples of {units} patients "
            f"(images without a patient id count as their own), seed {seed}",
            "level": level,
            **{
                key: intervals[key]
                for key in ("roc_auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity")
            },
        },
        "calibration": {
            "ece_bins": f"{settings.calibration_bins} equal-width bins of each label's probability, then the mean "
            "over labels",
            "brier": "mean over known (image, label) values of the squared error (0 best, 1 worst)",
            "bins": calibration,
        },
        "per_label": per_label,
        "co_occurrence": co_occurrence(labels, names),
    }
    return headline, report, calibration


def co_occurrence(labels: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, int]]:
    """Test images positive for both labels of each pair (the diagonal: for the label)."""
    positive = (labels == 1).astype(np.int64)
    counts = positive.T @ positive
    return {name: {other: int(counts[i, j]) for j, other in enumerate(names)} for i, name in enumerate(names)}


def label_tasks(labels: np.ndarray, probabilities: np.ndarray, names: Sequence[str]) -> list[Task]:
    """Each label on its known test images, for the ROC and precision-recall curves."""
    tasks = []
    for column, name in enumerate(names):
        rows = known(labels, column)
        tasks.append((name, labels[rows, column] == 1, probabilities[rows, column]))
    return tasks


def confusion_rows(labels: np.ndarray, decided: np.ndarray, names: Sequence[str]) -> list[dict[str, str]]:
    """Per label and known test image, `<label> present` / `<label> absent`, actual against decided: each label's
    2 x 2 table as a block of DVC's confusion plot."""

    def word(name: str, value: bool) -> str:
        return f"{name} {'present' if value else 'absent'}"

    return [
        {"actual": word(name, labels[row, column] == 1), "predicted": word(name, bool(decided[row, column]))}
        for column, name in enumerate(names)
        for row in np.flatnonzero(known(labels, column)).tolist()
    ]


def prediction_rows(
    test: ImageSet, probabilities: np.ndarray, point: LabelThresholds, paths: Sequence[str]
) -> list[dict]:
    """One row per test image: truth (`label`: positives joined by |; `y_<label>`: 1, 0 or empty for unknown), the
    decision, and every label's probability."""
    names, decided = test.class_names, point.decide(probabilities)

    def truth(value: float) -> str:
        return "" if np.isnan(value) else str(int(value))

    return [
        {
            "path": path,
            "label": "|".join(name for column, name in enumerate(names) if test.labels[row, column] == 1),
            "predicted": "|".join(name for column, name in enumerate(names) if decided[row, column]),
            "group": test.groups[row],
            **{f"y_{name}": truth(test.labels[row, column]) for column, name in enumerate(names)},
            **{f"p_{name}": f"{probabilities[row, column]:.6f}" for column, name in enumerate(names)},
        }
        for row, path in enumerate(paths)
    ]


def galleries(
    classifier: Classifier, test: ImageSet, probabilities: np.ndarray, point: LabelThresholds, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """The most confident wrong decisions (an image and a label: a false alarm or a miss), and Grad-CAM for each
    label's most confident true positive and its worst miss (the positive it scored lowest)."""
    names, decided, labels = test.class_names, point.decide(probabilities), test.labels
    wrong = [
        (abs(float(probabilities[row, column]) - point.thresholds[column]), row, column)
        for column in range(len(names))
        for row in np.flatnonzero(known(labels, column) & (decided[:, column] != (labels[:, column] == 1))).tolist()
    ]
    chosen = [(row, column) for _, row, column in sorted(wrong, key=lambda case: (-case[0], case[1], case[2]))][:count]
    tiles = [thumbnail(test.paths[row], *test.sizes[row]) for row, _ in chosen]
    mistakes = gallery(
        tiles,
        [label_caption(test, probabilities, row, column) for row, column in chosen],
        empty="no wrong decisions on test images",
    )
    if classifier.overlays is None:
        return mistakes, gallery([], [], empty=f"no Grad-CAM: the {classifier.model} model has no convolutional layers")
    cases = []
    for column in range(len(names)):
        positives = np.flatnonzero(labels[:, column] == 1)
        if len(positives):
            order = positives[np.argsort(-probabilities[positives, column], kind="stable")]
            cases += [(int(order[0]), column)] + ([(int(order[-1]), column)] if len(order) > 1 else [])
    if not cases:
        return mistakes, gallery([], [], empty="no positive test images")
    pixels = np.stack([load_image(test.paths[row], test.sizes[row], classifier.image_size) for row, _ in cases])
    tiles = classifier.overlays(pixels, np.array([column for _, column in cases]))
    captions = [label_caption(test, probabilities, row, column) for row, column in cases]
    return mistakes, gallery(tiles, captions, empty="no positive test images")


def label_caption(test: ImageSet, probabilities: np.ndarray, row: int, column: int) -> str:
    present = "present" if test.labels[row, column] == 1 else "absent"
    return f"{test.class_names[column]} {present}\np {probabilities[row, column]:.2f}"
