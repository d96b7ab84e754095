"""view: check data/processed/<ds>/<split>/<label>/ against split's manifest; rebuild it when it does not match.

Not a DVC stage: DVC tracks the manifest, and train and evaluate rebuild the folders themselves before they
read them. Run this for the folders alone, e.g. after `git clone` and `dvc pull`, for your own code:

    python -m stages.view chest_xray
"""

from __future__ import annotations

import logging

from medimage.settings.split import SplitEntry, SplitParams
from medimage.splitting.view import dataset_view
from stages.cli import run_stage

log = logging.getLogger(__name__)


def main(params: SplitParams, dataset: SplitEntry) -> None:
    processed, _ = dataset_view(params.split, dataset)  # no manifest: read_processed says to run split (or dvc pull)
    log.info("%s matches its manifest", processed)


if __name__ == "__main__":
    run_stage("view", main, __doc__, (SplitParams, SplitEntry))
