"""split@<ds>: re-split data/interim/<ds> into data/processed/<ds>/{train,val,test}/<label>/ and audit the result.

Files are hardlinked from the interim folder (no image bytes copied where the file system allows);
manifest.csv gains a `split` column. metrics/<ds>/split.json compares the archive's own splits with the new
ones, and plots/<ds>/split_samples.png shows a few images per split and label.

    python -m stages.split chest_xray
"""

from __future__ import annotations

import logging

from medimage.atomic import write_json
from medimage.params import DatasetSpec, Params, split_settings
from medimage.paths import INTERIM_DIR, PLOTS_DIR, PROCESSED_DIR, metrics_file
from medimage.splitting.audit import audit_table
from medimage.splitting.resplit import split_dataset
from stages.cli import run_stage

log = logging.getLogger(__name__)


def main(params: Params, dataset: DatasetSpec) -> None:
    settings = split_settings(params, dataset)
    sheet = PLOTS_DIR / dataset.name / "split_samples.png"
    metrics = split_dataset(dataset.name, settings, INTERIM_DIR / dataset.name, PROCESSED_DIR / dataset.name, sheet)
    write_json(metrics_file(dataset.name, "split.json"), metrics)
    log.info("%s", audit_table(dataset.name, settings, metrics))


if __name__ == "__main__":
    run_stage("split", main, __doc__)
