"""restructure@<ds>: stream the archive into data/interim/<ds>/<source_split>/<label>/<file> plus manifest.csv.

Members are read one at a time (never extracted whole), validated, hashed and written in one pass.
Corrupt or non-image files are skipped and listed in skipped.csv (or fail the stage: restructure.on_corrupt).

    python -m stages.restructure chest_xray
"""

from __future__ import annotations

import logging

from medimage.archives.unpacking import restructure
from medimage.paths import INTERIM_DIR, SKIPPED, raw_archive
from medimage.reporting.metrics_files import write_metrics
from medimage.settings.restructure import RestructureEntry, RestructureParams
from stages.cli import run_stage

log = logging.getLogger(__name__)
# Declared metrics; per split and label counts, the ignore rules that fired and unmatched examples go to the report.
HEADLINE = ("images", "skipped", "duplicates", "extension_mismatch", "unmatched")


def main(params: RestructureParams, dataset: RestructureEntry) -> None:
    destination = INTERIM_DIR / dataset.name
    metrics = restructure(raw_archive(dataset.name), dataset, params.restructure, destination)
    write_metrics(dataset.name, "restructure", metrics, HEADLINE)
    skipped = metrics["skipped"]
    log.info(
        "%d images in %d split(s) -> %s; skipped %d corrupt, %d not images, %d DICOM files not shown (see %s), "
        "%d outside the layout; %d duplicate images kept and flagged",
        metrics["images"],
        len(metrics["counts"]),
        destination,
        skipped["corrupt"],
        skipped["not_image"],
        skipped["unsupported"],
        destination / SKIPPED,
        skipped["ignored_by_layout"],
        metrics["duplicates"],
    )


if __name__ == "__main__":
    run_stage("restructure", main, __doc__, (RestructureParams, RestructureEntry))
