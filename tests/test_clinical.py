"""The evaluation's statistics against cases with known answers: threshold, rates, bootstrap, calibration, curves."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from medimage.reporting import clinical
from medimage.reporting.plot_data import GRID, class_tasks, precision_recall_rows, roc_rows
from medimage.reporting.scores import binary_roc_auc, macro_roc_auc
from medimage.settings.evaluate import EvaluateSettings


def test_youden_picks_the_threshold_that_separates_a_constructed_score_set() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    # at 0.7: sensitivity 3/4, specificity 4/4 (J = 0.75); at 0.4: 4/4 and 3/4 (J = 0.75, found first from the top)
    threshold = clinical.youden_threshold(labels, scores)
    assert threshold == pytest.approx(0.7)
    assert clinical.rates(labels, scores >= threshold) == {
        "sensitivity": 0.75,
        "specificity": 1.0,
        "ppv": 1.0,
        "npv": 0.8,
    }


def test_a_target_sensitivity_gives_the_highest_threshold_reaching_it() -> None:
    labels = np.array([1, 1, 1, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.5, 0.2, 0.3, 0.1])
    assert clinical.threshold_for_sensitivity(labels, scores, 0.75) == pytest.approx(0.5)
    assert clinical.threshold_for_sensitivity(labels, scores, 1.0) == pytest.approx(0.2)
    assert clinical.rates(labels, scores >= 0.5)["sensitivity"] == 0.75


def argmax_accuracy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return clinical.accuracy(labels, probabilities.argmax(axis=1))


def test_the_bootstrap_interval_matches_the_binomial_one_and_resamples_patients() -> None:
    rng = np.random.default_rng(0)
    labels = np.zeros(400, dtype=int)
    correct = rng.random(400) < 0.8  # accuracy 0.8 on 400 images: normal-approximation 95 % CI +-0.039
    probabilities = np.where(correct[:, None], [[0.9, 0.1]], [[0.1, 0.9]])
    found = clinical.bootstrap({"accuracy": argmax_accuracy}, labels, probabilities, [""] * 400, 2000, 0.95, 1)
    half_width = 1.96 * np.sqrt(0.8 * 0.2 / 400)
    assert found["accuracy"]["low"] == pytest.approx(correct.mean() - half_width, abs=0.01)
    assert found["accuracy"]["high"] == pytest.approx(correct.mean() + half_width, abs=0.01)
    # the same images as 40 patients of 10 identical outcomes: 10x fewer independent units, ~sqrt(10)x wider
    grouped_correct = np.repeat(rng.random(40) < 0.8, 10)
    grouped = np.where(grouped_correct[:, None], [[0.9, 0.1]], [[0.1, 0.9]])
    patients = [f"p{index // 10}" for index in range(400)]
    by_patient = clinical.bootstrap({"accuracy": argmax_accuracy}, labels, grouped, patients, 2000, 0.95, 1)
    by_image = clinical.bootstrap({"accuracy": argmax_accuracy}, labels, grouped, [""] * 400, 2000, 0.95, 1)
    width = {
        name: result["accuracy"]["high"] - result["accuracy"]["low"]
        for name, result in (("patient", by_patient), ("image", by_image))
    }
    assert width["patient"] > 2.5 * width["image"]


def test_the_rank_roc_auc_is_scikit_learns_with_ties_and_undefined_without_both_classes() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    for size, decimals in ((3, 3), (7, 1), (50, 1), (400, 2), (1000, 6)):  # 1 decimal: many tied scores
        labels = rng.integers(0, 2, size)
        labels[:2] = (0, 1)
        scores = np.round(rng.random(size) * 0.5 + labels * 0.3, decimals)
        assert binary_roc_auc(labels == 1, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        probabilities = rng.dirichlet(np.ones(3), size)
        classes = rng.integers(0, 3, size)
        classes[:3] = (0, 1, 2)
        expected = np.mean([roc_auc_score(classes == k, probabilities[:, k]) for k in range(3)])
        assert macro_roc_auc(classes, probabilities) == pytest.approx(expected, abs=1e-12)
    assert binary_roc_auc(np.array([1, 0, 1]) == 1, np.array([0.9, 0.1, 0.8])) == 1.0
    assert binary_roc_auc(np.ones(4, bool), np.arange(4.0)) is None
    assert macro_roc_auc(np.zeros(4, int), np.full((4, 2), 0.5)) is None


def test_calibration_of_a_perfectly_and_a_badly_calibrated_model() -> None:
    labels = np.array([0] * 8 + [1] * 2)  # the model says 0 with 0.8 for all: right 8 times in 10
    probabilities = np.tile([[0.8, 0.2]], (10, 1))
    rows = clinical.calibration_bins(labels, probabilities, 10)
    assert rows == [{"bin": 7, "confidence": 0.8, "accuracy": 0.8, "images": 10}]
    assert clinical.expected_calibration_error(rows) == 0.0
    overconfident = np.tile([[1.0, 0.0]], (10, 1))
    assert clinical.expected_calibration_error(clinical.calibration_bins(labels, overconfident, 10)) == 0.2
    assert clinical.brier_score(labels, overconfident) == pytest.approx(0.4)  # 2 images at distance^2 2
    assert clinical.brier_score(labels, probabilities) == pytest.approx((8 * 0.08 + 2 * 1.28) / 10)


def test_one_vs_rest_rates_per_class() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    per_class = clinical.one_vs_rest(labels, predicted, 3)
    assert per_class[0] == {"sensitivity": 0.5, "specificity": 0.75}
    assert per_class[1] == {"sensitivity": 1.0, "specificity": 0.75}
    assert clinical.macro_rates(per_class) == {"sensitivity": pytest.approx(0.6667, abs=1e-4), "specificity": 0.8333}


def curve(rows: list[dict], name: str, y: str) -> np.ndarray:
    return np.array([row[y] for row in rows if row["class"] == name])


def test_one_vs_rest_curves_per_class_on_a_constructed_score_set() -> None:
    names = ["a", "b", "c"]
    labels = np.array([0, 0, 1, 1, 2, 2])
    # a and b are separated perfectly; c's positives score 0.5 and 0.2 against negatives at 0.4 and below
    probabilities = np.array(
        [[0.9, 0.1, 0.0], [0.6, 0.0, 0.4], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.3, 0.2, 0.5], [0.5, 0.3, 0.2]]
    )
    roc = roc_rows(class_tasks(labels, probabilities, names))
    assert len(roc) == 3 * len(GRID) and {row["class"] for row in roc} == set(names)
    assert curve(roc, "a", "tpr")[1] == 1.0 and curve(roc, "b", "tpr")[1] == 1.0  # all positives found at FPR 0.01
    c_tpr = curve(roc, "c", "tpr")
    assert c_tpr[0] == 0.5 and c_tpr[-1] == 1.0  # one of c's two scores above every negative
    assert np.all(np.diff(c_tpr) >= 0)
    pr = precision_recall_rows(class_tasks(labels, probabilities, names))
    c_precision = curve(pr, "c", "precision")
    # c: ranked 0.5 (c) > 0.4 (a) > 0.2 (c) ...: precision 1 up to recall 0.5, then 2/3 at recall 1
    assert c_precision[GRID <= 0.5].tolist() == [1.0] * int((GRID <= 0.5).sum())
    assert c_precision[-1] == pytest.approx(0.6667)
    assert np.all(np.diff(c_precision) <= 0)  # interpolated precision never rises with recall


def test_a_class_missing_from_the_test_split_has_no_curve() -> None:
    labels = np.array([0, 0, 1])
    probabilities = np.array([[0.9, 0.1, 0.0], [0.8, 0.1, 0.1], [0.2, 0.7, 0.1]])
    assert {row["class"] for row in roc_rows(class_tasks(labels, probabilities, ["a", "b", "c"]))} == {"a", "b"}
    assert {row["class"] for row in precision_recall_rows(class_tasks(labels, probabilities, ["a", "b", "c"]))} == {
        "a",
        "b",
    }


def test_balanced_accuracy_is_scikit_learns_without_a_warning_when_a_predicted_class_is_absent() -> None:
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(0)
    labels, probabilities = rng.integers(0, 3, 40), rng.random((40, 5))  # classes 3 and 4 predicted, never true
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        expected = balanced_accuracy_score(labels, probabilities.argmax(axis=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clinical.balanced_accuracy(labels, probabilities.argmax(axis=1)) == pytest.approx(expected, abs=1e-12)
    assert clinical.balanced_accuracy(np.zeros(5, int), probabilities[:5].argmax(axis=1)) is None


def test_every_headline_rate_is_read_at_the_one_operating_point_chosen_on_val() -> None:
    """Two classes whose val-chosen threshold is far from 0.5: accuracy, balanced accuracy, F1, sensitivity,
    specificity and the per-class table all count the same decisions, and the headline states the threshold."""
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], 100)
    scores = np.clip(np.where(labels == 1, 0.3, 0.1) + rng.normal(0, 0.06, 200), 0, 1)  # positives near 0.3
    probabilities = np.stack([1 - scores, scores], axis=1)
    images = clinical.ImageSet(
        paths=[Path(f"{index}.png") for index in range(200)],
        labels=labels,
        sizes=[(8, 8)] * 200,
        class_names=["NORMAL", "PNEUMONIA"],
        groups=[""] * 200,
    )
    point = clinical.operating_point(images, probabilities, 2, EvaluateSettings())
    assert 0.1 < point.threshold < 0.3 and point.rule.startswith("Youden")
    decided = point.decide(probabilities)
    train_accuracy = clinical.accuracy(labels, decided)
    headline, report, _ = clinical.assess(images, probabilities, point, train_accuracy, EvaluateSettings())
    assert headline["threshold"] == point.threshold == report["operating_point"]["threshold"]
    assert headline["accuracy"] == pytest.approx(np.mean(decided == labels), abs=1e-4)
    assert headline["accuracy"] > 0.9
    assert argmax_accuracy(labels, probabilities) == 0.5  # what accuracy at 0.5 would have said
    positives, negatives = 100, 100
    implied = (headline["sensitivity"] * positives + headline["specificity"] * negatives) / 200
    assert headline["accuracy"] == pytest.approx(implied, abs=1e-3)  # one point: the rates agree with accuracy
    assert headline["balanced_accuracy"] == pytest.approx(
        (headline["sensitivity"] + headline["specificity"]) / 2, abs=1e-3
    )
    assert report["per_class"]["PNEUMONIA"]["recall"] == pytest.approx(headline["sensitivity"], abs=1e-3)
    assert headline["generalization_gap"] == 0.0
    multi = clinical.operating_point(images, None, 3, EvaluateSettings())
    assert multi.threshold is None and (multi.decide(rng.random((5, 3))) < 3).all()
