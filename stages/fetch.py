"""fetch@<ds>: put the dataset's archive, exactly as its source ships it, at data/raw/<ds>.zip.

metrics/<ds>/fetch_report.json says where it came from and what it is (source, Kaggle handle, file name, size,
sha256), for the report and for readers of git alone.

fetch.source chooses where it comes from: synthetic (an offline stand-in, the default), path (a local
download) or kaggle (the pinned version, with the user's own credentials).

    python -m stages.fetch chest_xray
"""

from __future__ import annotations

import logging

from medimage.archives.sources import fetch_archive, provenance
from medimage.atomic import write_json
from medimage.paths import metrics_file, metrics_report, raw_archive
from medimage.settings.fetch import FetchEntry, FetchParams
from stages.cli import run_stage

log = logging.getLogger(__name__)


def main(params: FetchParams, dataset: FetchEntry) -> None:
    destination = raw_archive(dataset.name)
    done = fetch_archive(dataset, params.fetch, destination)
    write_json(metrics_file(dataset.name, metrics_report("fetch")), provenance(dataset, params.fetch, destination))
    log.info("%s -> %s", done, destination)


if __name__ == "__main__":
    run_stage("fetch", main, __doc__, (FetchParams, FetchEntry))
