"""reports/<ds>.html: one run on one self-contained page, in the order a clinical reader asks.

Provenance, the flow of images, partition and leakage, the model, performance on test, subgroups, what the
model looked at, and an index of the TRIPOD+AI and CLAIM items the page answers. Figures are inline SVG
(figures.py), pictures inline PNG; the page holds no script and makes no request. Every name and number from an
archive or a run is escaped. Numbers carry `data-key` (the JSON key they come from) so tests can read them back.
"""

from __future__ import annotations

import base64
import html
import json
from collections import Counter
from collections.abc import Iterable, Sequence

from medimage.reporting import figures
from medimage.reporting.runs import GALLERIES, Run

STYLE = """
body { font: 15px/1.45 'Liberation Sans', Arial, sans-serif; color: #1d2733; margin: 0 auto; max-width: 1100px;
       padding: 0 24px 48px; }
h1 { font-size: 26px; margin: 28px 0 4px; }
h2 { font-size: 20px; margin: 32px 0 8px; border-bottom: 1px solid #d5dbe3; }
h3 { font-size: 16px; margin: 18px 0 6px; } .lead { color: #4a5868; margin: 0 0 12px; }
table { border-collapse: collapse; margin: 8px 0 12px; } td, th { padding: 3px 10px; border-bottom: 1px solid #e4e8ee;
text-align: left; vertical-align: top; } th { background: #f3f5f8; font-weight: 600; } td.n { text-align: right;
font-variant-numeric: tabular-nums; } .figures { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; } figcaption { color: #4a5868; font-size: 13px; } img { max-width: 100%; }
.note { background: #fff8e5; border-left: 4px solid #e0b000; padding: 6px 12px; } code { font-size: 13px; }
nav a { margin-right: 12px; } .wide { overflow-x: auto; } .wide td, .wide th { white-space: nowrap; padding: 3px 6px; }
"""

SECTIONS = {  # id -> heading, in page order
    "provenance": "Provenance",
    "flow": "Flow of images",
    "partition": "Partition and leakage",
    "model": "Model",
    "performance": "Performance on the test split",
    "subgroups": "Subgroups",
    "explanations": "What the model looked at",
    "checklist": "Reporting checklist index",
}

# Items of TRIPOD+AI (Collins et al., BMJ 2024) and CLAIM 2024 (Tejani et al.) this page answers, and where.
CHECKLIST = [
    ("TRIPOD+AI 5a, 18e; CLAIM 7, 43", "source of data, its version, data availability", "provenance"),
    ("TRIPOD+AI 7, 10, 11, 20a; CLAIM 8, 9, 12, 35", "flow, quality checks, exclusions, missing labels", "flow"),
    ("TRIPOD+AI 12a, 12d, 20c; CLAIM 19, 20", "partitioning, level of disjointness, distributions", "partition"),
    ("TRIPOD+AI 12c, 13, 22; CLAIM 22-27", "model, training, class imbalance, specification", "model"),
    ("TRIPOD+AI 12e, 15, 21, 23a; CLAIM 21, 28, 29, 37, 38", "measures with intervals, threshold", "performance"),
    ("TRIPOD+AI 14, 23a", "performance in subgroups", "subgroups"),
    ("CLAIM 31, 39", "explainability, failure analysis", "explanations"),
]
FOR_THE_AUTHOR = (
    "TRIPOD+AI 1-4 (title, abstract, background, objectives), 5b (study dates), 6 (eligibility, setting), "
    "8b-c and 9 (outcome and predictor assessment), 17-19 (ethics, funding, protocol, registration), 25-27 "
    "(interpretation, limitations, usability); CLAIM 1-6, 11, 14-18 (reference standard), 34, 40-41, 44."
)


MATTER = {  # the settings a reader of the results needs first; the page lists the others under them
    *("split.strategy", "split.ratios", "split.seed", "split.stratify", "split.group", "split.near_duplicates"),
    *("train.model", "train.weights", "train.image_size", "train.epochs", "train.batch_size", "train.learning_rate"),
    *("train.augment", "train.class_weight", "train.seed", "evaluate.target_sensitivity", "evaluate.confidence_level"),
}


def esc(value: object) -> str:
    """Text for HTML: a string as it is, anything else as JSON writes it (true, null, lists), escaped."""
    return html.escape(value if isinstance(value, str) else json.dumps(value), quote=True)


def number(value: object, key: str | None = None) -> str:
    """A number as its JSON writes it (None: not defined), in a right-aligned cell tagged with its key."""
    shown = "n/a" if value is None else esc(value)
    tag = f' data-key="{esc(key)}"' if key else ""
    return f'<td class="n"{tag}>{shown}</td>'


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """`rows`: already-rendered cells (<td>...</td>, from `number` or `cell`)."""
    head = "".join(f"<th>{esc(name)}</th>" for name in header)
    body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
    return f"<table>{f'<thead><tr>{head}</tr></thead>' if any(header) else ''}<tbody>{body}</tbody></table>"


def cell(value: object) -> str:
    return f"<td>{esc(value)}</td>"


def tagged(text: str, key: str) -> str:
    """A cell of text (an interval, say) tagged with the JSON key it comes from."""
    return f'<td data-key="{esc(key)}">{esc(text)}</td>'


def picture(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def figure(svg: str, caption: str) -> str:
    return f'<figure role="img" aria-label="{esc(caption)}">{svg}</figure>'


def interval(low: object, high: object) -> str:
    return "n/a" if low is None or high is None else f"{low} to {high}"


# --------------------------------------------------------------------------- sections


def provenance(run: Run) -> str:
    fetched = run.fetch
    unrecorded = "not recorded"
    rows = [
        [cell("dataset"), cell(run.dataset)],
        [cell("source"), cell(fetched.get("source", unrecorded))],
        [cell("Kaggle handle and version"), cell(fetched.get("kaggle") or "none pinned" if fetched else unrecorded)],
        [cell("archive"), cell(f"{fetched['archive']} ({fetched['bytes']:,} bytes)" if fetched else unrecorded)],
        [
            cell("archive sha256"),
            f'<td><code data-key="fetch.sha256">{esc(fetched.get("sha256", unrecorded))}</code></td>',
        ],
        [cell("read from"), cell(run.origin)],
    ]
    named = {f"{section}.{key}": value for section, values in run.settings.items() for key, value in values.items()}
    settings = [[cell(key), cell(value)] for key, value in named.items()]
    return (
        table(["", ""], rows)
        + '<p class="lead">The commit and date of this run: <code>git log -1 --format="%h %cs" -- metrics/'
        + esc(run.dataset)
        + "/eval.json</code> (the page itself carries no date, so that a rerun gives the same bytes).</p>"
        + "<h3>Settings that matter</h3>"
        + table(["setting", "value"], ([cell(key), cell(named[key])] for key in named if key in MATTER))
        + "<details><summary>every setting</summary>"
        + table(["setting", "value"], settings)
        + "</details>"
    )


def flow(run: Run) -> str:
    restructured, split = run.restructure, run.split
    skipped = restructured["skipped"]
    steps = [
        ["images matching the layout and whole", restructured["images"], "restructure.images"],
        *[[f"skipped: {why.replace('_', ' ')}", count, f"restructure.skipped.{why}"] for why, count in skipped.items()],
        ["identical copies inside the archive (kept once)", restructured["duplicates"], "restructure.duplicates"],
    ]
    flow_rows = [[cell(what), number(count, key)] for what, count, key in steps]
    lead = '<p class="lead">From the archive to the images each split holds.</p>' + table(["step", "images"], flow_rows)
    if "prevalence" in split:
        return lead + label_prevalence(run)
    new = split["counts"]["new"]
    labels = sorted({label for per_label in new.values() for label in per_label})
    per_split = [
        [
            cell(name),
            *(number(new[name].get(label, 0)) for label in labels),
            number(sum(new[name].values())),
            number(run.patients.get(name)),
        ]
        for name in sorted(new)
    ]
    return (
        lead
        + "<h3>Images per split and label (after the split stage)</h3>"
        + table(["split", *labels, "images", "patients or groups"], per_split)
    )


def label_prevalence(run: Run) -> str:
    """A multi-label set's positives per split and label, with the prevalence among the known values, and the
    labels too rare to reach every split."""
    split = run.split
    positives, prevalence, images = split["counts"]["new"], split["prevalence"]["new"], split["images"]["new"]
    splits = sorted(positives)
    rows = [
        [cell("images"), *(number(images.get(name)) for name in splits)],
        [cell("patients or groups"), *(number(run.patients.get(name)) for name in splits)],
    ]
    for label in run.class_names:
        rows.append(
            [cell(label)]
            + [
                tagged(
                    f"{positives[name][label]:,}"
                    + ("" if prevalence[name][label] is None else f" ({prevalence[name][label]:.1%})"),
                    f"split.prevalence.new.{name}.{label}",
                )
                for name in splits
            ]
        )
    missing = "".join(
        f'<p class="note">{esc(name)} holds no positive image of {esc(", ".join(labels))}: too few patients have '
        "that label for every split to hold one; its scores there are undefined.</p>"
        for name, labels in sorted(split.get("labels_missing", {}).items())
    )
    return (
        "<h3>Positive images per split and label, and the prevalence among known values (after the split stage)"
        "</h3>" + table(["", *splits], rows) + missing
    )


def partition(run: Run) -> str:
    split, settings = run.split, run.settings.get("split", {})
    audit = [
        ("patients in more than one split", "group_overlap"),
        ("identical images in more than one split", "duplicate_overlap"),
        ("copies (near duplicates) in more than one split", "copy_overlap"),
        ("shift: test told from train by the images (ROC AUC; 0.5 is none)", "shift_auc"),
        ("shortcut: label told from width, height, channels, bytes (ROC AUC)", "shortcut_auc"),
    ]
    rows = [
        [
            cell(what),
            number(split[key]["original"], f"split.{key}.original"),
            number(split[key]["new"], f"split.{key}.new"),
        ]
        for what, key in audit
    ]
    reading = []
    if (split["group_overlap"]["new"] or 0) == 0 and (split["duplicate_overlap"]["new"] or 0) == 0:
        reading.append("No patient and no identical image is in two splits.")
    else:
        reading.append("Some patients or identical images are in two splits: test scores may be optimistic.")
    if split.get("shortcut_warning"):
        reading.append("Image metadata alone predicts the label well: a model can score without looking at the images.")
    described = ", ".join(
        f"{name} {esc(settings.get(key))}"
        for name, key in (
            ("strategy", "strategy"),
            ("ratios", "ratios"),
            ("seed", "seed"),
            ("stratified", "stratify"),
            ("grouped by patient", "group"),
            ("copies searched by", "near_duplicates"),
        )
    )
    files = split.get("files", {})
    return (
        f"<p>{described}. The split folders hold {files.get('linked', 0):,} hardlinks and "
        f"{files.get('copied', 0):,} copies of the restructured images.</p>"
        + table(["audit", "archive's own split", "this split"], rows)
        + f"<p>{esc(' '.join(reading))}</p>"
    )


def model(run: Run) -> str:
    summary = run.model or {}
    train = run.settings.get("train", {})
    size = summary.get("image_size", train.get("image_size"))
    named = summary.get("class_weight") or {}
    if "positive" in named:  # a multi-label set: each label's weight on its positives (negatives near 0.5)
        pairs = zip(run.class_names, named["positive"], strict=True)
        weights = "on positives: " + ", ".join(f"{name} {value:.3g}" for name, value in pairs)
    else:
        weights = ", ".join(f"{run.class_names[int(index)]} {value:.3g}" for index, value in named.items())
    facts = [
        ("architecture", summary.get("model", train.get("model"))),
        ("weights", train.get("weights") or "trained from scratch"),
        ("input", f"{size} x {size} RGB"),
        ("reader", summary.get("loader", train.get("loader"))),
        ("epochs run", summary.get("epochs")),
        ("early stopping on val loss", summary.get("early_stopping")),
        ("class weights", weights or train.get("class_weight")),
        ("float policy", summary.get("dtype_policy")),
    ]
    curves = "".join(
        figure(figures.training_curves(rows, metric), f"{metric} by epoch, train and val")
        for metric, rows in run.curves.items()
    )
    return table(["", ""], ([cell(what), cell("n/a" if value is None else value)] for what, value in facts)) + (
        f'<div class="figures">{curves}</div>' if curves else "<p>No training curves (one-pass model).</p>"
    )


HEADLINE = [
    ("accuracy", "accuracy", "accuracy"),
    ("balanced accuracy", "balanced_accuracy", "balanced_accuracy"),
    ("ROC AUC (macro, one vs rest)", "roc_auc", "roc_auc"),
    ("sensitivity", "sensitivity", "sensitivity"),
    ("specificity", "specificity", "specificity"),
    ("macro F1", "macro_f1", None),
    ("expected calibration error", "ece", None),
    ("Brier score", "brier", None),
]


# what the shared keys mean for a multi-label set (reporting/multi_label.py says how each is computed)
MULTI_LABEL_HEADLINE = {
    "accuracy": "accuracy (known label values decided right)",
    "balanced_accuracy": "balanced accuracy (macro over labels)",
    "roc_auc": "ROC AUC (macro over labels)",
    "sensitivity": "sensitivity (macro over labels)",
    "specificity": "specificity (macro over labels)",
    "macro_f1": "F1 (macro over labels)",
    "ece": "expected calibration error (mean over labels)",
    "brier": "Brier score (known label values)",
}


def headline_table(evaluated: dict, captions: dict[str, str]) -> str:
    """The headline scores, captioned by `captions` where given, with their intervals."""
    intervals = evaluated["confidence_intervals"]
    level = int(round(intervals["level"] * 100))
    headline = [
        [cell(captions.get(key, what)), number(evaluated[key], f"eval.{key}"),
         tagged(interval(intervals[ci]["low"], intervals[ci]["high"]), f"eval_report.intervals.{ci}") if ci
         else cell("")]
        for what, key, ci in HEADLINE
    ]  # fmt: skip
    return (
        f'<p class="lead">{evaluated["test_images"]:,} test images; intervals: {esc(intervals["method"])}.</p>'
        + table(["score", "value", f"{level} % interval"], headline)
    )


def performance(run: Run) -> str:
    evaluated = run.evaluation
    if evaluated.get("multi_label"):
        return multi_label_performance(run)
    point = evaluated["operating_point"]
    rates = point.get("at_threshold", {})  # two classes; with more, the decision is the most probable class
    operating = [
        [
            cell("threshold"),
            tagged("none: the most probable class", "eval.threshold")
            if evaluated["threshold"] is None
            else number(evaluated["threshold"], "eval.threshold"),
        ],
        [cell("rule"), cell(point["rule"])],
        *[[cell(name.upper() if len(name) == 3 else name), number(value)] for name, value in rates.items()],
    ]
    per_class = [
        [cell(name), *(number(scores[key]) for key in ("support", "precision", "recall", "f1", "specificity"))]
        for name, scores in evaluated["per_class"].items()
    ]
    names = run.class_names
    confusion_counts = Counter((row["actual"], row["predicted"]) for row in run.confusion)
    actual_totals = Counter(row["actual"] for row in run.confusion)
    confusion_rows = [
        {
            "actual": actual,
            "predicted": predicted,
            "images": confusion_counts[(actual, predicted)],
            "share": confusion_counts[(actual, predicted)] / max(actual_totals[actual], 1),
        }
        for actual in names
        for predicted in names
    ]
    charts = [
        figure(figures.roc_curves(run.roc), "ROC curves, one per class"),
        figure(figures.precision_recall_curves(run.precision_recall), "precision-recall curves, one per class"),
        figure(figures.confusion_matrix(confusion_rows), "confusion matrix, counts, shaded by row share"),
        figure(figures.reliability_diagram(run.calibration), "reliability diagram"),
    ]
    return (
        headline_table(evaluated, {})
        + "<h3>Operating point</h3>"
        + table(["", ""], operating)
        + "<h3>Per class</h3>"
        + table(["class", "images", "precision (PPV)", "sensitivity", "F1", "specificity"], per_class)
        + f'<div class="figures">{"".join(charts)}</div>'
    )


def multi_label_performance(run: Run) -> str:
    """Several labels per image: the headline keys as macro means (captioned so), then each label as a task of its
    own on the images whose value of it is known, with its threshold chosen on val."""
    evaluated = run.evaluation
    per_label = [
        [
            cell(name),
            number(f"{scores['positive']:,} / {scores['negative']:,} / {scores['unknown']:,}"),
            number(scores["prevalence"], f"eval_report.per_label.{name}.prevalence"),
            number(scores["roc_auc"], f"eval_report.per_label.{name}.roc_auc"),
            tagged(interval(*scores["roc_auc_ci"]), f"eval_report.per_label.{name}.roc_auc_ci"),
            number(scores["pr_auc"], f"eval_report.per_label.{name}.pr_auc"),
            cell(interval(*scores["pr_auc_ci"])),
            number(scores["threshold"], f"eval_report.per_label.{name}.threshold"),
            *(number(scores[key]) for key in ("sensitivity", "specificity", "ppv", "npv", "ece")),
        ]
        for name, scores in evaluated["per_label"].items()
    ]
    header = ["label", "positive/negative/unknown", "prevalence", "ROC AUC", "interval", "PR AUC", "interval"]
    header += ["threshold", "sensitivity", "specificity", "PPV", "NPV", "ECE"]
    together = evaluated["co_occurrence"]
    co_occurrence = [
        {"actual": name, "predicted": other, "images": count, "share": count / max(together[name][name], 1)}
        for name, row in together.items()
        for other, count in row.items()
    ]
    charts = [
        figure(figures.per_label_curves(run.roc, "fpr", "tpr", "ROC per label (test)", True), "ROC curve per label"),
        figure(
            figures.per_label_curves(run.precision_recall, "recall", "precision", "precision-recall per label", False),
            "precision-recall curve per label",
        ),
        figure(
            figures.heatmap(co_occurrence, "labels present together (test)", "with label", "images with label"),
            "label co-occurrence in test: images positive for both, shaded by the share of the row label's images",
        ),
        figure(figures.reliability_diagram(run.calibration), "reliability diagram, every known label value"),
    ]
    return (
        headline_table(evaluated, MULTI_LABEL_HEADLINE)
        + f"<h3>Operating point</h3><p>{esc(evaluated['operating_point']['rule'])}; an image may have every label "
        "or none. A label without a known positive and negative in test has no ROC AUC and is left out of the "
        "macro mean; unknown values are left out of every score.</p>"
        + "<h3>Per label</h3>"
        + f'<div class="wide">{table(header, per_label)}</div>'
        + "".join(f'<div class="figures">{chart}</div>' for chart in charts[:2])
        + f'<div class="figures">{"".join(charts[2:])}</div>'
    )


def subgroups(run: Run) -> str:
    found = run.evaluation.get("subgroups") or {}
    if not found:
        return "<p>The test images fall into no subgroups the manifest records (one original split, one colour).</p>"
    parts = (
        ['<p class="lead">Accuracy of the known label values and ROC AUC as the macro mean over labels, each with '
         "its patient bootstrap interval.</p>"]
        if run.evaluation.get("multi_label")
        else []
    )  # fmt: skip
    for attribute, entries in found.items():
        rows = [
            [
                cell(entry["value"]),
                number(entry["images"]),
                number(entry.get("accuracy")),
                cell(interval(*entry["accuracy_ci"]) if "accuracy_ci" in entry else "too few images"),
                number(entry.get("roc_auc")),
                cell(interval(*entry["roc_auc_ci"]) if "roc_auc_ci" in entry else ""),
            ]
            for entry in entries
        ]
        header = ["value", "images", "accuracy", "interval", "ROC AUC", "interval"]
        parts.append(f"<h3>By {esc(attribute)}</h3>" + table(header, rows))
    return "".join(parts)


def explanations(run: Run) -> str:
    shown = [picture(run.galleries[name], caption) for name, caption in GALLERIES.items() if name in run.galleries]
    if not shown:
        return "<p>The galleries are in the DVC cache: <code>dvc pull</code> them, then build the page again.</p>"
    return "".join(shown)


def checklist() -> str:
    rows = [
        [cell(items), cell(topic), f'<td><a href="#{anchor}">{esc(SECTIONS[anchor])}</a></td>']
        for items, topic, anchor in CHECKLIST
    ]
    return (
        table(["items", "topic", "where"], rows)
        + f'<p class="note">For the author to fill (the pipeline cannot know them): {esc(FOR_THE_AUTHOR)}</p>'
    )


def page(run: Run) -> str:
    evaluated = run.evaluation
    bodies = {
        "provenance": provenance(run),
        "flow": flow(run),
        "partition": partition(run),
        "model": model(run),
        "performance": performance(run),
        "subgroups": subgroups(run),
        "explanations": explanations(run),
        "checklist": checklist(),
    }
    nav = "".join(f'<a href="#{anchor}">{esc(title)}</a>' for anchor, title in SECTIONS.items())
    sections = "".join(
        f'<section id="{anchor}"><h2>{esc(title)}</h2>{bodies[anchor]}</section>' for anchor, title in SECTIONS.items()
    )
    summary = (
        f"{len(run.class_names)} labels, several per image ({', '.join(run.class_names)}); macro ROC AUC "
        f"{evaluated['roc_auc']} over labels, accuracy of known label values {evaluated['accuracy']}"
        if evaluated.get("multi_label")
        else f"{len(run.class_names)} classes ({', '.join(run.class_names)}); test accuracy {evaluated['accuracy']}, "
        f"ROC AUC {evaluated['roc_auc']}"
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(run.dataset)}: evaluation report</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head><body>'
        f'<h1>{esc(run.dataset)}: evaluation report</h1><p class="lead">{esc(summary)}</p><nav>{nav}</nav>'
        f"{sections}</body></html>\n"
    )
