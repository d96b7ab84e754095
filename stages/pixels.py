"""pixels@<ds>: every split's images at train.image_size, decoded and resized once, for every experiment to read.

data/pixels/<ds>/<split>.npy (uint8, images x size x size x 3, RGB, the processed manifest's order) and
pixels.json (the size, and a hash of each split's images). The split folders are checked against split's
manifest first and rebuilt from data/interim/<ds> where they do not match (`medimage.splitting.view`).
DVC reruns this stage only when the manifest or train.image_size changes: a sweep over the learning rate, the
epochs, the model or the augmentation trains on the same arrays.

    python -m stages.pixels chest_xray
"""

from __future__ import annotations

import logging

from medimage.atomic import atomic_dir
from medimage.modelling.prepared import make_pixels
from medimage.paths import PIXELS_DIR
from medimage.settings.split import SplitEntry
from medimage.settings.train import TrainParams
from medimage.splitting.view import dataset_view
from stages.cli import run_stage

log = logging.getLogger(__name__)


def main(params: TrainParams, dataset: SplitEntry) -> None:
    processed, rows = dataset_view(params.split, dataset)
    size = params.train.image_size
    with atomic_dir(PIXELS_DIR / dataset.name) as staging:
        index = make_pixels(processed, rows, size, staging)
    counts = ", ".join(f"{split} {entry['images']}" for split, entry in index["splits"].items())
    log.info("%s at %d x %d -> %s", counts, size, size, PIXELS_DIR / dataset.name)


if __name__ == "__main__":
    run_stage("pixels", main, __doc__, (TrainParams, SplitEntry))
