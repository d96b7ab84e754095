"""The entry point every stage shares: `python -m stages.<stage> <dataset>`.

Parses the dataset name, validates the params.yaml sections and dataset keys the stage reads, sets up logging, then
runs the stage. A PipelineError becomes one line on stderr and exit status 1.

Logging: the library and the stages log through `logging`; every line is prefixed with the stage and the
dataset here, once. Information goes to stdout, warnings to stderr. Under CI=true only warnings are shown.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import TextIO

from medimage.atomic import sweep_leftovers
from medimage.errors import PipelineError
from medimage.settings.files import DatasetEntry, StageParams, read_dataset, read_params

LOGGERS = ("medimage", "stages", "__main__")  # a stage run with -m logs as __main__


class _Below(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def configure_logging(prefix: str, information_stream: TextIO = sys.stdout) -> None:
    """INFO to `information_stream` and WARNING and above to stderr, each line led by `prefix`; quiet under CI=true."""
    quiet = os.environ.get("CI", "").lower() == "true"
    information = logging.StreamHandler(information_stream)
    information.addFilter(_Below(logging.WARNING))
    information.setFormatter(logging.Formatter(f"{prefix}: %(message)s"))
    warnings = logging.StreamHandler(sys.stderr)
    warnings.setLevel(logging.WARNING)
    warnings.setFormatter(logging.Formatter(f"{prefix}: warning: %(message)s"))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [information, warnings]
        logger.setLevel(logging.WARNING if quiet else logging.INFO)
        logger.propagate = False


def run_stage(
    stage: str,
    main: Callable[..., None],
    description: str | None,
    reads: tuple[type[StageParams], type[DatasetEntry]],
    argv: list[str] | None = None,
    arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse, validate what the stage `reads` (its params.yaml sections, its datasets/<ds>.yaml keys), run
    `main(params, dataset)`; with `arguments` (more command-line arguments to declare),
    `main(params, dataset, args)`, and information logged to stderr (stdout is the command's output)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m stages.{stage}", description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", help="a dataset listed under 'datasets' in params.yaml")
    if arguments is not None:
        arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging(f"{stage} {args.dataset}", sys.stdout if arguments is None else sys.stderr)
    swept = sweep_leftovers()
    if swept:
        logging.getLogger(__name__).info("removed %d temporary file(s) of interrupted runs: %s", len(swept), swept[0])
    try:
        params_model, dataset_model = reads
        params = read_params(params_model)
        dataset = read_dataset(args.dataset, dataset_model, params.datasets)
        if arguments is None:
            main(params, dataset)
        else:
            main(params, dataset, args)
    except PipelineError as error:
        print(f"{stage}: error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{stage}: interrupted; nothing was written in place", file=sys.stderr)
        sys.exit(130)
