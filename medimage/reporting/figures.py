"""The report's figures: Vega-Lite specs over the same rows the DVC plots read, drawn to SVG offline.

vl-convert bundles Vega and Vega-Lite and draws without a browser or a network; the SVG goes inline into the page.
One font is named so that the same rows give the same bytes on every machine (vl-convert falls back to its own
copy of Liberation Sans where the system has none).
"""

from __future__ import annotations

from collections.abc import Sequence

import vl_convert

FONT = "Liberation Sans"
WIDTH, HEIGHT = 320, 240
CONFIG = {"font": FONT, "view": {"stroke": None}, "axis": {"labelFontSize": 11, "titleFontSize": 12}}


def svg(spec: dict) -> str:
    """The chart as an SVG element (no XML prolog), ready to be placed in HTML."""
    drawn = vl_convert.vegalite_to_svg({"config": CONFIG, "width": WIDTH, "height": HEIGHT, **spec})
    return drawn[drawn.index("<svg") :]


def _line(rows: Sequence[dict], x: str, y: str, colour: str, title: str, x_title: str, y_title: str) -> dict:
    return {
        "title": title,
        "data": {"values": list(rows)},
        "mark": {"type": "line", "interpolate": "step-after" if x in ("fpr", "recall") else "linear"},
        "encoding": {
            "x": {"field": x, "type": "quantitative", "title": x_title},
            "y": {"field": y, "type": "quantitative", "title": y_title},
            "color": {"field": colour, "type": "nominal", "title": None},
        },
    }


def training_curves(rows: Sequence[dict], metric: str) -> str:
    """`rows`: {"epoch", "split" (train or val), metric}; one line per split."""
    return svg(_line(rows, "epoch", metric, "split", f"{metric} by epoch", "epoch", metric))


def roc_curves(rows: Sequence[dict]) -> str:
    """`rows`: plots/<ds>/roc.csv (class, fpr, tpr); the chance diagonal under the curves."""
    diagonal = {"data": {"values": [{"fpr": 0, "tpr": 0}, {"fpr": 1, "tpr": 1}]}, "mark": {"type": "line"}}
    diagonal["encoding"] = {
        "x": {"field": "fpr", "type": "quantitative"},
        "y": {"field": "tpr", "type": "quantitative"},
        "color": {"value": "#bbbbbb"},
        "strokeDash": {"value": [4, 4]},
    }
    curves = _line(rows, "fpr", "tpr", "class", "", "false positive rate", "true positive rate")
    return svg(
        {"title": "ROC, one vs rest (test)", "layer": [diagonal, {k: v for k, v in curves.items() if k != "title"}]}
    )


def precision_recall_curves(rows: Sequence[dict]) -> str:
    """`rows`: plots/<ds>/precision_recall.csv (class, recall, precision)."""
    return svg(
        _line(rows, "recall", "precision", "class", "precision-recall, one vs rest (test)", "recall", "precision")
    )


def confusion_matrix(rows: Sequence[dict]) -> str:
    """`rows`: {"actual", "predicted", "images", "share"} (share of the actual class), every pair of classes."""
    return heatmap(rows, "confusion matrix (test)", "predicted", "actual")


def heatmap(rows: Sequence[dict], title: str, x_title: str, y_title: str) -> str:
    """Counts in a grid shaded by share: `rows` as confusion_matrix takes them (x: predicted, y: actual)."""
    base = {
        "x": {"field": "predicted", "type": "nominal", "title": x_title},
        "y": {"field": "actual", "type": "nominal", "title": y_title},
    }
    cells = {
        "mark": "rect",
        "encoding": {
            **base,
            "color": {"field": "share", "type": "quantitative", "scale": {"domain": [0, 1], "scheme": "blues"}},
        },
    }
    counts = {
        "mark": {"type": "text", "fontSize": 12},
        "encoding": {
            **base,
            "text": {"field": "images", "type": "quantitative"},
            "color": {"condition": {"test": "datum.share > 0.5", "value": "white"}, "value": "black"},
        },
    }
    return svg({"title": title, "data": {"values": list(rows)}, "layer": [cells, counts]})


def reliability_diagram(rows: Sequence[dict]) -> str:
    """`rows`: plots/<ds>/calibration.csv (bin, confidence, accuracy, images); the diagonal is perfect calibration."""
    diagonal = {
        "data": {"values": [{"confidence": 0, "accuracy": 0}, {"confidence": 1, "accuracy": 1}]},
        "mark": {"type": "line", "color": "#bbbbbb", "strokeDash": [4, 4]},
        "encoding": {
            "x": {"field": "confidence", "type": "quantitative"},
            "y": {"field": "accuracy", "type": "quantitative"},
        },
    }
    axes = {
        "x": {"field": "confidence", "type": "quantitative", "scale": {"domain": [0, 1]}, "title": "confidence"},
        "y": {"field": "accuracy", "type": "quantitative", "scale": {"domain": [0, 1]}, "title": "accuracy"},
    }
    line = {"data": {"values": list(rows)}, "mark": "line", "encoding": axes}
    points = {
        "data": {"values": list(rows)},
        "mark": {"type": "circle", "opacity": 0.8},
        "encoding": {**axes, "size": {"field": "images", "type": "quantitative", "title": "images"}},
    }
    return svg({"title": "reliability (test; the diagonal is perfect calibration)", "layer": [diagonal, line, points]})


def per_label_curves(rows: Sequence[dict], x: str, y: str, title: str, chance: bool) -> str:
    """One small chart per label (`rows`: roc.csv or precision_recall.csv of a multi-label set), five a row: a
    multi-label set's labels are separate tasks, and fourteen lines in one chart cannot be told apart."""
    titles = {"fpr": "false positive rate", "tpr": "true positive rate", "recall": "recall", "precision": "precision"}
    axes = {
        "x": {"field": x, "type": "quantitative", "title": titles[x], "scale": {"domain": [0, 1]}},
        "y": {"field": y, "type": "quantitative", "title": titles[y], "scale": {"domain": [0, 1]}},
    }
    layers: list[dict] = [{"mark": {"type": "line", "interpolate": "step-after"}, "encoding": axes}]
    if chance:
        diagonal = {"x": {"datum": 0}, "y": {"datum": 0}, "x2": {"datum": 1}, "y2": {"datum": 1}}
        layers.insert(0, {"mark": {"type": "rule", "color": "#bbbbbb", "strokeDash": [4, 4]}, "encoding": diagonal})
    spec = {
        "config": CONFIG,
        "title": title,
        "data": {"values": list(rows)},
        "facet": {"field": "class", "type": "nominal", "title": None},
        "columns": 5,
        "spec": {"width": 140, "height": 110, "layer": layers},
    }
    drawn = vl_convert.vegalite_to_svg(spec)
    return drawn[drawn.index("<svg") :]
