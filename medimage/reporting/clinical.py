"""What a clinical reader asks of a test score: an operating point, its uncertainty, and calibration.

- Operating point: how probabilities become one decision per image; every headline rate (accuracy, balanced
  accuracy, macro F1, sensitivity, specificity, train accuracy) is read at it. Two classes: a threshold on the
  positive class's probability chosen on the validation split, by Youden's J (sensitivity + specificity - 1,
  maximal) or as the highest threshold that still reaches a target sensitivity; PPV and NPV go to the report,
  with the rates at 0.5 for reference. The positive class is the second in class order (sorted labels: PNEUMONIA
  after NORMAL, yes after no). More classes: the most probable class.
- Uncertainty: percentile bootstrap, seeded. Whole patients are resampled where the manifest has patient ids
  (images without one count as their own patient), so images of one patient never pretend to be independent.
- Calibration: the Brier score (mean over images of the squared distance between the probability vector and the
  one-hot truth, 0 best, 2 worst) and the expected calibration error over equal-width confidence bins (the
  top-class probability against how often the top class is right, weighted by the bin's share of images).
No TensorFlow here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_curve

from medimage.modelling.opencv_loader import ImageSet
from medimage.reporting.scores import macro_f1, macro_roc_auc, per_class_scores
from medimage.settings.evaluate import EvaluateSettings

POSITIVE = 1  # index of the positive class for two-class datasets

Metric = Callable[[np.ndarray, np.ndarray], float | None]


def youden_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold on `scores` (positive: score >= threshold) that maximises sensitivity + specificity - 1."""
    fpr, tpr, thresholds = roc_curve(labels == POSITIVE, scores)
    finite = np.isfinite(thresholds)
    best = int(np.argmax(np.where(finite, tpr - fpr, -np.inf)))
    return float(thresholds[best])


def threshold_for_sensitivity(labels: np.ndarray, scores: np.ndarray, target: float) -> float:
    """The highest threshold whose sensitivity on (labels, scores) is at least `target`."""
    positives = np.sort(scores[labels == POSITIVE])[::-1]
    if len(positives) == 0:
        return 0.5
    needed = int(np.ceil(target * len(positives)))
    return float(positives[max(needed, 1) - 1])


def rates(labels: np.ndarray, positive_predicted: np.ndarray) -> dict[str, float | None]:
    """Sensitivity, specificity, PPV and NPV of a binary decision; None where a denominator is 0."""
    truth = labels == POSITIVE
    tp, fn = int(np.sum(truth & positive_predicted)), int(np.sum(truth & ~positive_predicted))
    tn, fp = int(np.sum(~truth & ~positive_predicted)), int(np.sum(~truth & positive_predicted))

    def ratio(top: int, bottom: int) -> float | None:
        return round(top / bottom, 4) if bottom else None

    return {
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
    }


def one_vs_rest(labels: np.ndarray, predicted: np.ndarray, classes: int) -> list[dict[str, float | None]]:
    """Per class: sensitivity and specificity of "this class" against all others, at the argmax decision."""
    found = []
    for index in range(classes):
        binary = rates(np.where(labels == index, POSITIVE, 1 - POSITIVE), predicted == index)
        found.append({"sensitivity": binary["sensitivity"], "specificity": binary["specificity"]})
    return found


def macro_rates(per_class: Sequence[dict[str, float | None]]) -> dict[str, float | None]:
    result = {}
    for key in ("sensitivity", "specificity"):
        values = [row[key] for row in per_class if row[key] is not None]
        result[key] = round(float(np.mean(values)), 4) if values else None
    return result


def brier_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    onehot = np.eye(probabilities.shape[1])[labels]
    return round(float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1))), 4)


def calibration_bins(labels: np.ndarray, probabilities: np.ndarray, bins: int) -> list[dict[str, float | int]]:
    """Per equal-width bin of top-class probability: mean confidence, accuracy and image count (empty bins left out)."""
    return reliability_rows(probabilities.max(axis=1), probabilities.argmax(axis=1) == labels, bins)


def reliability_rows(confidence: np.ndarray, outcome: np.ndarray, bins: int) -> list[dict[str, float | int]]:
    """Per equal-width bin of `confidence`: its mean, how often `outcome` (1 or True) holds, and the count (empty
    bins left out)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for index in range(bins):
        members = which == index
        if members.any():
            rows.append(
                {
                    "bin": index,
                    "confidence": round(float(confidence[members].mean()), 4),
                    "accuracy": round(float(outcome[members].mean()), 4),
                    "images": int(members.sum()),
                }
            )
    return rows


def expected_calibration_error(rows: Sequence[dict[str, float | int]]) -> float:
    total = sum(int(row["images"]) for row in rows)
    if not total:
        return 0.0
    return round(sum(row["images"] / total * abs(row["accuracy"] - row["confidence"]) for row in rows), 4)


def resampling_units(groups: Sequence[str]) -> list[np.ndarray]:
    """Row indices per patient (images without a patient id are their own unit), in first-seen order."""
    units: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        units.setdefault(group or f"\0image{index}", []).append(index)
    return [np.array(rows) for rows in units.values()]


def bootstrap(
    metrics: dict[str, Metric],
    labels: np.ndarray,
    probabilities: np.ndarray,
    groups: Sequence[str],
    resamples: int,
    level: float,
    seed: int,
) -> dict[str, dict[str, float | int | None]]:
    """Percentile bootstrap interval of each metric, resampling patients; undefined draws are skipped and counted."""
    units = resampling_units(groups)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in metrics}
    for _ in range(resamples):
        chosen = np.concatenate([units[i] for i in rng.integers(0, len(units), len(units))])
        for name, metric in metrics.items():
            value = metric(labels[chosen], probabilities[chosen])
            if value is not None and np.isfinite(value):
                draws[name].append(value)
    tail = (1 - level) / 2 * 100
    return {
        name: {
            "low": round(float(np.percentile(values, tail)), 4) if values else None,
            "high": round(float(np.percentile(values, 100 - tail)), 4) if values else None,
            "undefined_draws": resamples - len(values),
        }
        for name, values in draws.items()
    }


def accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(predicted == labels))


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float | None:
    """The mean recall of the classes present: scikit-learn's value, without its warning for every bootstrap draw
    that lacks a rare class the model predicts."""
    present = np.unique(labels)
    if len(present) < 2:
        return None
    return float(np.mean([np.mean(predicted[labels == label] == label) for label in present]))


def decision_rates(labels: np.ndarray, predicted: np.ndarray, classes: int) -> dict[str, float | None]:
    """Sensitivity and specificity of the decisions: of the positive class for two classes (with PPV and NPV),
    else the means over classes of one-vs-rest."""
    if classes == 2:
        return rates(labels, predicted == POSITIVE)
    return macro_rates(one_vs_rest(labels, predicted, classes))


@dataclass(frozen=True)
class OperatingPoint:
    """How probabilities become one class per image: a threshold on the positive class's probability (two
    classes), or None for the most probable class."""

    threshold: float | None
    rule: str

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        if self.threshold is None:
            return probabilities.argmax(axis=1)
        return (probabilities[:, POSITIVE] >= self.threshold).astype(np.int64)


def operating_point(
    val: ImageSet, val_probabilities: np.ndarray | None, classes: int, settings: EvaluateSettings
) -> OperatingPoint:
    """The decision rule every headline rate is read at, chosen on the validation split for two classes."""
    if classes != 2:
        return OperatingPoint(None, "the most probable class; sensitivity and specificity: macro one-vs-rest means")
    if val_probabilities is None or len(np.unique(val.labels)) < 2:
        return OperatingPoint(0.5, "0.5 (no validation split holding both classes to choose one on)")
    scores = val_probabilities[:, POSITIVE]
    if settings.target_sensitivity is not None:
        threshold = threshold_for_sensitivity(val.labels, scores, settings.target_sensitivity)
        return OperatingPoint(
            round(threshold, 4), f"highest threshold with sensitivity >= {settings.target_sensitivity:g} on val"
        )
    threshold = youden_threshold(val.labels, scores)
    return OperatingPoint(round(threshold, 4), "Youden's J (sensitivity + specificity - 1) maximal on val")


def per_class_table(labels: np.ndarray, predicted: np.ndarray, class_names: list[str]) -> dict[str, dict]:
    """Per class: precision, recall, F1, support, and one-vs-rest sensitivity and specificity."""
    table = per_class_scores(labels, predicted, class_names)
    for name, rates_of_class in zip(class_names, one_vs_rest(labels, predicted, len(class_names)), strict=True):
        table[name] |= rates_of_class
    return table


def operating_point_report(point: OperatingPoint, test: ImageSet, probabilities: np.ndarray) -> dict:
    """The rule and threshold; for two classes the rates at it (with PPV and NPV) and at 0.5 for reference."""
    report: dict = {"rule": point.rule, "threshold": point.threshold}
    if point.threshold is not None:
        report |= {
            "positive_class": test.class_names[POSITIVE],
            "at_threshold": rates(test.labels, point.decide(probabilities) == POSITIVE),
            "at_0.5": rates(test.labels, probabilities[:, POSITIVE] >= 0.5),
        }
    return report


def confidence_intervals(
    test: ImageSet, probabilities: np.ndarray, point: OperatingPoint, settings: EvaluateSettings
) -> dict:
    """Bootstrap intervals of the headline scores (rates at `point`), and how they were made."""
    classes = probabilities.shape[1]

    def at_point(score: Callable[[np.ndarray, np.ndarray], float | None]) -> Metric:
        """The score of the decisions at `point`, for the bootstrap, which resamples probabilities."""
        return lambda truth, resampled: score(truth, point.decide(resampled))

    def rate(name: str) -> Callable[[np.ndarray, np.ndarray], float | None]:
        return lambda truth, decided: decision_rates(truth, decided, classes)[name]

    statistics: dict[str, Metric] = {
        "accuracy": at_point(accuracy),
        "balanced_accuracy": at_point(balanced_accuracy),
        "roc_auc": macro_roc_auc,
        "sensitivity": at_point(rate("sensitivity")),
        "specificity": at_point(rate("specificity")),
    }
    resamples, level, seed = settings.bootstrap_resamples, settings.confidence_level, settings.seed
    intervals = bootstrap(statistics, test.labels, probabilities, test.groups, resamples, level, seed)
    units = len(resampling_units(test.groups))
    return {
        "method": f"percentile bootstrap, {resamples} resamples of {units} patients "
        f"(images without a patient id count as their own), seed {seed}",
        "level": level,
        **intervals,
    }


AGE_STRING = re.compile(r"(\d{1,3})([DWMY])")  # DICOM's Age String: 045Y, 006M, 010W, 003D


def subgroup_value(column: str, cell: str) -> str:
    """A metadata cell as a subgroup: ages in bands of ten years (a number a band apart from its neighbours),
    DICOM's age strings (045Y; months, weeks and days are under a year) among them."""
    if not cell:
        return "unknown"
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", column).lower().replace("_", " ").split()
    if "age" in words:  # age, Age, Patient Age, PatientAge
        dicom_age = AGE_STRING.fullmatch(cell.strip().upper())
        try:
            years = (int(dicom_age[1]) if dicom_age[2] == "Y" else 0) if dicom_age else int(float(cell))
        except ValueError:
            return cell
        decade = years // 10 * 10
        return f"{decade}-{decade + 9}"
    return cell


MIN_SUBGROUP = 10  # images below which a subgroup's scores are not given (its interval would be most of [0, 1])


def subgroups(
    test: ImageSet,
    probabilities: np.ndarray,
    point: OperatingPoint,
    attributes: dict[str, Sequence[str]],
    settings: EvaluateSettings,
    metrics: dict[str, Metric] | None = None,
) -> dict[str, list[dict]]:
    """Per attribute of the test images (the original split, grey or colour, ...) that takes two values or more:
    each value's images, accuracy and ROC AUC (or the `metrics` given), with intervals resampling its patients
    as the headline's do."""
    metrics = metrics or {
        "accuracy": lambda truth, drawn: accuracy(truth, point.decide(drawn)),
        "roc_auc": macro_roc_auc,
    }
    found: dict[str, list[dict]] = {}
    for attribute, values in attributes.items():
        column = np.asarray(values)
        if len(set(values)) < 2:
            continue
        found[attribute] = []
        for value in sorted(set(values)):
            rows = np.flatnonzero(column == value)
            labels, scores, groups = test.labels[rows], probabilities[rows], [test.groups[row] for row in rows]
            entry: dict = {"value": value, "images": len(rows)}
            if len(rows) >= MIN_SUBGROUP:
                resamples, level, seed = settings.bootstrap_resamples, settings.confidence_level, settings.seed
                intervals = bootstrap(metrics, labels, scores, groups, resamples, level, seed)
                for name, metric in metrics.items():
                    estimate = metric(labels, scores)
                    entry[name] = None if estimate is None else round(estimate, 4)
                    entry[f"{name}_ci"] = [intervals[name]["low"], intervals[name]["high"]]
            found[attribute].append(entry)
    return found


def prediction_rows(test: ImageSet, probabilities: np.ndarray, point: OperatingPoint, paths: Sequence[str]) -> list:
    """One row per test image: its path in the processed folder, truth, decision and every class probability
    (six decimals), so that two runs can be compared image by image from git alone."""
    names, decided = test.class_names, point.decide(probabilities)
    return [
        {
            "path": path,
            "label": names[test.labels[row]],
            "predicted": names[decided[row]],
            "group": test.groups[row],
            **{f"p_{name}": f"{probabilities[row, column]:.6f}" for column, name in enumerate(names)},
        }
        for row, path in enumerate(paths)
    ]


def assess(
    test: ImageSet,
    test_probabilities: np.ndarray,
    point: OperatingPoint,
    train_accuracy: float,
    settings: EvaluateSettings,
) -> tuple[dict, dict, list[dict]]:
    """Headline metrics (the same keys for every dataset; every rate at `point`), the report, and the
    reliability-diagram rows. `train_accuracy` must be read at the same point."""
    labels, classes = test.labels, test_probabilities.shape[1]
    predicted = point.decide(test_probabilities)
    intervals = confidence_intervals(test, test_probabilities, point, settings)
    calibration = calibration_bins(labels, test_probabilities, settings.calibration_bins)
    report = {
        "test_images": len(test),
        "classes": test.class_names,
        "operating_point": operating_point_report(point, test, test_probabilities),
        "confidence_intervals": intervals,
        "calibration": {
            "ece_bins": f"{settings.calibration_bins} equal-width bins of top-class probability",
            "brier": "mean over images of the squared distance from the one-hot truth (0 best, 2 worst)",
            "bins": calibration,
        },
        "per_class": per_class_table(labels, predicted, test.class_names),
    }
    auc, test_accuracy = macro_roc_auc(labels, test_probabilities), accuracy(labels, predicted)
    balanced, chosen = balanced_accuracy(labels, predicted), decision_rates(labels, predicted, classes)
    headline = {
        "threshold": point.threshold,
        "accuracy": round(test_accuracy, 4),
        "balanced_accuracy": None if balanced is None else round(balanced, 4),
        "macro_f1": round(macro_f1(labels, predicted, classes), 4),
        "roc_auc": None if auc is None else round(auc, 4),
        "roc_auc_ci_low": intervals["roc_auc"]["low"],
        "roc_auc_ci_high": intervals["roc_auc"]["high"],
        "sensitivity": chosen["sensitivity"],
        "specificity": chosen["specificity"],
        "ece": expected_calibration_error(calibration),
        "brier": brier_score(labels, test_probabilities),
        "train_accuracy": round(train_accuracy, 4),
        "generalization_gap": round(train_accuracy - test_accuracy, 4),
    }
    return headline, report, calibration
