"""Each stage's numbers in two files: a few headline metrics DVC compares, and a report people read.

metrics/<ds>/<stage>.json is declared as DVC metrics: the same few label-agnostic keys for every dataset, so
that `dvc exp show` and `dvc metrics diff` read as a table. metrics/<ds>/<stage>_report.json holds the rest
(per-label counts, per-class tables, rule texts, intervals and how they were made); it is a tracked output but
not a declared metric.
"""

from __future__ import annotations

from collections.abc import Sequence

from medimage.atomic import write_json
from medimage.paths import metrics_file


def write_metrics(dataset: str, stage: str, metrics: dict, headline: Sequence[str]) -> None:
    """Write the `headline` keys of `metrics` as the declared metrics and every other key as the report."""
    write_json(metrics_file(dataset, f"{stage}.json"), {key: metrics[key] for key in headline})
    write_json(metrics_file(dataset, f"{stage}_report.json"), {k: v for k, v in metrics.items() if k not in headline})
