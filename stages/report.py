"""report@<ds>: the run on one self-contained page, reports/<ds>.html, that any browser opens offline.

Read from what the other stages wrote (metrics/<ds>/, the plot rows, the model's train.json, the galleries):
provenance, the flow of images, partition and leakage, the model, test performance with intervals, subgroups,
Grad-CAM and the most confident mistakes, and an index of the TRIPOD+AI and CLAIM items the page answers.

    python -m stages.report chest_xray
    python -m stages.report chest_xray --compare HEAD~1 HEAD     # two runs side by side, from git alone
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from medimage.atomic import atomic_file
from medimage.paths import REPORTS_DIR
from medimage.reporting.comparison import comparison_page, run_at
from medimage.reporting.page import page
from medimage.reporting.runs import folder_reader, load_run, shown_settings
from medimage.settings.evaluate import EvaluateParams
from medimage.settings.split import SplitEntry
from stages.cli import run_command

log = logging.getLogger(__name__)


def write_page(text: str, destination: Path) -> None:
    with atomic_file(destination) as temporary:
        temporary.write_text(text, encoding="utf-8")
    log.info("wrote %s (%d kB)", destination, destination.stat().st_size // 1024)


def main(params: EvaluateParams, dataset: SplitEntry, args: argparse.Namespace) -> None:
    if args.compare:
        first, second = (run_at(revision, dataset.name, Path(".")) for revision in args.compare)
        write_page(
            comparison_page(first, second, params.evaluate), args.output or REPORTS_DIR / f"{dataset.name}-compare.html"
        )
        return
    run = load_run(folder_reader(Path(".")), dataset.name, "the working tree", shown_settings(params, dataset))
    write_page(page(run), REPORTS_DIR / f"{dataset.name}.html")


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compare", nargs=2, metavar=("REV_A", "REV_B"), help="two git revisions or DVC experiments to compare"
    )
    parser.add_argument("--output", type=Path, help="where the comparison page goes (reports/<ds>-compare.html)")


if __name__ == "__main__":
    run_command("report", main, __doc__, (EvaluateParams, SplitEntry), arguments=arguments)
