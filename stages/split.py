"""split@<ds>: re-split data/interim/<ds> into data/processed/<ds>/{train,val,test}/<label>/ and audit the result.

DVC tracks data/processed/<ds>/manifest.csv (the interim rows with their `split` and new path); the split
folders beside it are a git-ignored view of hardlinked interim files (no image bytes copied where the file
system allows), which train and evaluate check and rebuild when needed (`python -m stages.view <ds>` by hand).
metrics/<ds>/split.json compares the archive's own splits with the new ones, and plots/<ds>/split_samples.png
shows a few images per split and label.

    python -m stages.split chest_xray
"""

from __future__ import annotations

import logging

from medimage.paths import INTERIM_DIR, PLOTS_DIR, PROCESSED_DIR, SPLIT_SAMPLES
from medimage.reporting.metrics_files import write_metrics
from medimage.settings.split import SplitEntry, SplitParams, ignored_overrides, split_settings
from medimage.splitting import copy_cache
from medimage.splitting.audit import AUDIT_KEYS, audit_table
from medimage.splitting.resplit import split_dataset
from stages.cli import run_stage

log = logging.getLogger(__name__)
# Declared metrics, each for the archive's splits ('original') and the new ones; counts and links go to the report.
HEADLINE = (*AUDIT_KEYS, "near_duplicate_pairs", "shortcut_warning")


def main(params: SplitParams, dataset: SplitEntry) -> None:
    settings = split_settings(params.split, dataset)
    for line in ignored_overrides(settings, dataset):
        log.warning("%s", line)
    sheet = PLOTS_DIR / dataset.name / SPLIT_SAMPLES
    interim, processed = INTERIM_DIR / dataset.name, PROCESSED_DIR / dataset.name
    metrics = split_dataset(dataset.name, settings, interim, processed, sheet, copy_cache.CACHE_DIR)
    write_metrics(dataset.name, "split", metrics, HEADLINE)
    log.info("%s", audit_table(dataset.name, settings, metrics))


if __name__ == "__main__":
    run_stage("split", main, __doc__, (SplitParams, SplitEntry))
