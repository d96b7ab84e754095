"""Two runs of one dataset side by side, and whether the change between them is more than noise.

Each run is read from git alone (a commit, branch, tag or DVC experiment): its metrics, plot rows and per-image
test predictions. On the same test images the difference is paired: a bootstrap interval of the ROC AUC and
accuracy differences (resampling patients, as the headline intervals do) and McNemar's exact test on the images
one run gets right and the other wrong. A multi-label set is paired on its macro ROC AUC, each label's ROC AUC
and the accuracy of known label values; McNemar's test is left out there (one image's decisions on its labels are
not independent pairs). When the test images differ, the page says so and gives no paired figure.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from medimage.errors import PipelineError
from medimage.reporting import figures
from medimage.reporting.clinical import bootstrap
from medimage.reporting.page import HEADLINE, MULTI_LABEL_HEADLINE, STYLE, cell, esc, figure, interval, number, table
from medimage.reporting.runs import Run, git_reader, load_run, settings_from
from medimage.reporting.scores import label_auc, macro_auc, macro_roc_auc
from medimage.settings.evaluate import EvaluateSettings

NOISE = 0.05  # McNemar's p below this, or an interval that excludes 0, is called more than noise


def resolve(revision: str, root: Path) -> str | None:
    """The commit of a git revision, or of a DVC experiment by name (refs/exps/.../<name>); None if neither."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if commit:
        return commit
    experiments = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/exps").splitlines()
    found = [line.split()[1] for line in experiments if line.split()[0].rsplit("/", 1)[-1] == revision]
    return found[0] if len(found) == 1 else None


def run_at(revision: str, dataset: str, root: Path) -> Run:
    """The run as committed at `revision`; PipelineError naming it when git and DVC do not know it."""
    commit = resolve(revision, root)
    if commit is None:
        raise PipelineError(f"git knows no revision {revision!r} and DVC no experiment of that name")
    described = subprocess.run(
        ["git", "log", "-1", "--format=%h %cs", commit], cwd=root, capture_output=True, text=True, check=True
    )
    read = git_reader(commit, root)
    return load_run(read, dataset, f"{revision} ({described.stdout.strip()})", settings_from(read, dataset))


@dataclass(frozen=True)
class Paired:
    images: int
    auc_difference: float | None  # second minus first
    auc_interval: tuple[float | None, float | None]
    accuracy_difference: float
    accuracy_interval: tuple[float | None, float | None]
    only_first_right: int
    only_second_right: int
    mcnemar_p: float | None  # None for a multi-label set
    # a multi-label set: label -> its ROC AUC difference and interval
    per_label: dict[str, tuple[float | None, tuple[float | None, float | None]]] = field(default_factory=dict)

    @property
    def beyond_noise(self) -> bool:
        excludes_zero = [
            low is not None and (low > 0 or high < 0) for low, high in (self.auc_interval, self.accuracy_interval)
        ]
        return (self.mcnemar_p is not None and self.mcnemar_p < NOISE) or any(excludes_zero)


def same_test_images(first: Run, second: Run) -> bool:
    def key(run: Run) -> list[tuple[str, str]]:
        return sorted((row["path"], row["label"]) for row in run.predictions)

    return bool(first.predictions) and key(first) == key(second) and first.class_names == second.class_names


def _arrays(run: Run, order: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, probabilities and right-or-wrong per image, in `order` of paths; for a multi-label set, labels and
    right-or-wrong per image and label (NaN where the label is unknown)."""
    by_path = {row["path"]: row for row in run.predictions}
    rows = [by_path[path] for path in order]
    names = run.class_names
    probabilities = np.array([[float(row[f"p_{name}"]) for name in names] for row in rows])
    if run.evaluation.get("multi_label"):
        labels = np.array([[float(row[f"y_{name}"] or "nan") for name in names] for row in rows])
        decided = np.array([[name in row["predicted"].split("|") for name in names] for row in rows])
        return labels, probabilities, np.where(np.isnan(labels), np.nan, decided == (labels == 1))
    index = {name: position for position, name in enumerate(names)}
    labels = np.array([index[row["label"]] for row in rows])
    right = np.array([row["label"] == row["predicted"] for row in rows])
    return labels, probabilities, right


def mcnemar(only_first: int, discordant: int) -> float:
    """McNemar's exact p: how likely so uneven a split of the images only one run gets right, were they alike."""
    return 1.0 if discordant == 0 else round(float(binomtest(only_first, discordant, 0.5).pvalue), 4)


def paired_difference(first: Run, second: Run, settings: EvaluateSettings) -> Paired:
    """The paired comparison on the same test images (check same_test_images first), with evaluate's bootstrap."""
    order = sorted(row["path"] for row in first.predictions)
    labels, first_scores, first_right = _arrays(first, order)
    _, second_scores, second_right = _arrays(second, order)
    multi_label = bool(first.evaluation.get("multi_label"))
    score = macro_auc if multi_label else macro_roc_auc
    columns = range(len(first.class_names)) if multi_label else range(0)

    def difference(chosen: np.ndarray, column: int | None) -> float | None:
        found = [
            score(labels[chosen], scores[chosen])
            if column is None
            else label_auc(labels[chosen], scores[chosen], column)
            for scores in (first_scores, second_scores)
        ]
        return None if None in found else found[1] - found[0]

    def accuracy_difference(chosen: np.ndarray) -> float:
        return float(np.nanmean(second_right[chosen]) - np.nanmean(first_right[chosen]))

    # each statistic reads the drawn image indices (bootstrap hands them over as both of its arrays)
    statistics = {
        "auc": lambda chosen, _: difference(chosen, None),
        "accuracy": lambda chosen, _: accuracy_difference(chosen),
        **{f"label {column}": lambda chosen, _, column=column: difference(chosen, column) for column in columns},
    }
    groups = {row["path"]: row.get("group", "") for row in first.predictions}
    indices = np.arange(len(order))
    intervals = bootstrap(
        statistics, indices, indices, [groups[path] for path in order], settings.bootstrap_resamples,
        settings.confidence_level, settings.seed,
    )  # fmt: skip

    def percentiles(name: str) -> tuple[float | None, float | None]:
        return intervals[name]["low"], intervals[name]["high"]

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 4) + 0.0  # + 0.0: no "-0.0"

    everything = np.arange(len(order))
    first_wins, second_wins = first_right == 1, second_right == 1  # NaN (unknown) is neither
    only_first, only_second = int(np.sum(first_wins & ~second_wins)), int(np.sum(~first_wins & second_wins))
    discordant = only_first + only_second
    return Paired(
        images=len(order),
        auc_difference=rounded(difference(everything, None)),
        auc_interval=percentiles("auc"),
        accuracy_difference=rounded(float(np.nanmean(second_right) - np.nanmean(first_right))),
        accuracy_interval=percentiles("accuracy"),
        only_first_right=only_first,
        only_second_right=only_second,
        mcnemar_p=None if multi_label else mcnemar(only_first, discordant),
        per_label={
            first.class_names[column]: (rounded(difference(everything, column)), percentiles(f"label {column}"))
            for column in columns
        },
    )


def _paired_section(first: Run, second: Run, settings: EvaluateSettings) -> str:
    if not first.predictions or not second.predictions:
        return (
            '<p class="note">One run has no per-image test predictions (it was committed before evaluate wrote '
            "metrics/&lt;dataset&gt;/test_predictions.csv): no paired difference can be given. Rerun it to get one."
            "</p>"
        )
    if not same_test_images(first, second):
        return (
            '<p class="note">The two runs were tested on different images (or with different classes): their scores '
            "are not paired, and no paired difference is given. Compare them only as two separate estimates.</p>"
        )
    paired = paired_difference(first, second, settings)
    decided = "label values" if paired.per_label else "images"
    differences = [
        ("ROC AUC, B minus A", paired.auc_difference, "paired.auc_difference", interval(*paired.auc_interval)),
        ("accuracy, B minus A", paired.accuracy_difference, "paired.accuracy_difference",
         interval(*paired.accuracy_interval)),
        (f"{decided} only A gets right", paired.only_first_right, None, ""),
        (f"{decided} only B gets right", paired.only_second_right, None, ""),
    ]  # fmt: skip
    if paired.mcnemar_p is not None:
        differences.append(("McNemar's exact test, p", paired.mcnemar_p, "paired.mcnemar_p", ""))
    differences += [
        (f"ROC AUC of {name}, B minus A", value, f"paired.per_label.{name}", interval(*spread))
        for name, (value, spread) in paired.per_label.items()
    ]
    rows = [[cell(what), number(value, key), cell(spread)] for what, value, key, spread in differences]
    noise = "neither interval excludes 0" + ("" if paired.mcnemar_p is None else " and McNemar's p is at least 0.05")
    verdict = (
        "The difference is more than noise." if paired.beyond_noise else f"The difference is within noise: {noise}."
    )
    return (
        f"<p>The same {paired.images:,} test images; {settings.bootstrap_resamples:,} paired bootstrap resamples of "
        f"patients, {round(settings.confidence_level * 100, 2):g} % intervals.</p>"
        + table(["", "value", "interval"], rows)
        + f'<p data-key="paired.verdict">{esc(verdict)}</p>'
    )


def comparison_page(first: Run, second: Run, settings: EvaluateSettings) -> str:
    """One page: both runs' headline scores and curves, then the paired difference."""
    captions = MULTI_LABEL_HEADLINE if first.evaluation.get("multi_label") else {}
    scores = [
        [
            cell(captions.get(key, what)),
            number(first.evaluation.get(key), f"a.{key}"),
            number(second.evaluation.get(key), f"b.{key}"),
        ]
        for what, key, _ in HEADLINE
    ]
    curves = "".join(
        figure(figures.roc_curves(run.roc), f"ROC curves of {label}") for label, run in (("A", first), ("B", second))
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(first.dataset)}: two runs compared</title>'
        f"<style>{STYLE}</style></head><body><h1>{esc(first.dataset)}: two runs compared</h1>"
        f"<p>A: {esc(first.origin)}<br>B: {esc(second.origin)}</p>"
        "<h2>Scores on each run's test split</h2>"
        + table(["score", "A", "B"], scores)
        + f'<div class="figures">{curves}</div>'
        + "<h2>Paired difference on the same images</h2>"
        + _paired_section(first, second, settings)
        + "</body></html>\n"
    )
