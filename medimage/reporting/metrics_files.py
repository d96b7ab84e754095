"""Each stage's numbers in two files: a few headline metrics DVC compares, and a report people read.

metrics/<ds>/<stage>.json is declared as DVC metrics: the same few label-agnostic keys for every dataset, so
that `dvc exp show` and `dvc metrics diff` read as a table. metrics/<ds>/<stage>_report.json holds the rest
(per-label counts, per-class tables, rule texts, intervals and how they were made); it is a tracked output but
not a declared metric.
"""

from __future__ import annotations

from collections.abc import Sequence

from medimage.atomic import write_json
from medimage.paths import declared_metrics, metrics_file, metrics_report


def write_metrics(dataset: str, stage: str, metrics: dict, headline: Sequence[str]) -> None:
    """Write the `headline` keys of `metrics` as the declared metrics and every other key as the report."""
    write_json(metrics_file(dataset, declared_metrics(stage)), {key: metrics[key] for key in headline})
    report = {key: value for key, value in metrics.items() if key not in headline}
    write_json(metrics_file(dataset, metrics_report(stage)), report)
