"""The entry points every stage shares: `python -m stages.<stage> <dataset> [options]`.

Each parses the dataset name, validates the params.yaml sections and dataset keys the stage reads, sets up
logging, then runs the stage: `run_stage` calls `main(params, dataset)` and sends information to stdout;
`run_command`, for a command with options and output of its own on stdout (predict, report --compare), calls
`main(params, dataset, args)` and sends information to stderr. A PipelineError becomes one line on stderr and
exit status 1.

Logging: the library and the stages log through `logging`; every line is prefixed with the stage and the
dataset here, once. Warnings go to stderr. Under CI=true only warnings are shown.
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


class InformationOnly(logging.Filter):
    """Records below WARNING: warnings have a handler of their own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


def configure_logging(prefix: str, information_stream: TextIO = sys.stdout) -> None:
    """INFO to `information_stream` and WARNING and above to stderr, each line led by `prefix`; quiet under CI=true."""
    quiet = os.environ.get("CI", "").lower() == "true"
    information = logging.StreamHandler(information_stream)
    information.addFilter(InformationOnly())
    information.setFormatter(logging.Formatter(f"{prefix}: %(message)s"))
    warnings = logging.StreamHandler(sys.stderr)
    warnings.setLevel(logging.WARNING)
    warnings.setFormatter(logging.Formatter(f"{prefix}: warning: %(message)s"))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [information, warnings]
        logger.setLevel(logging.WARNING if quiet else logging.INFO)
        logger.propagate = False


Reads = tuple[type[StageParams], type[DatasetEntry]]  # the params.yaml sections and the datasets/<ds>.yaml keys


def run_stage(
    stage: str,
    main: Callable[..., None],  # main(params, dataset)
    description: str | None,
    reads: Reads,
    argv: list[str] | None = None,
) -> None:
    """A DVC stage: validate what it `reads`, run `main(params, dataset)`; information to stdout."""
    parser = _parser(stage, description)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    _run(stage, args, reads, sys.stdout, main)


def run_command(
    stage: str,
    main: Callable[..., None],  # main(params, dataset, args)
    description: str | None,
    reads: Reads,
    arguments: Callable[[argparse.ArgumentParser], None],
    argv: list[str] | None = None,
) -> None:
    """A command with options of its own (declared by `arguments`) and output on stdout: validate what it `reads`,
    run `main(params, dataset, args)`; information to stderr."""
    parser = _parser(stage, description)
    arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    _run(stage, args, reads, sys.stderr, lambda params, dataset: main(params, dataset, args))


def _parser(stage: str, description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m stages.{stage}", description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", help="a dataset listed under 'datasets' in params.yaml")
    return parser


def _run(
    stage: str,
    args: argparse.Namespace,
    reads: Reads,
    information: TextIO,
    call: Callable[[StageParams, DatasetEntry], None],
) -> None:
    configure_logging(f"{stage} {args.dataset}", information)
    swept = sweep_leftovers()
    if swept:
        logging.getLogger(__name__).info("removed %d temporary file(s) of interrupted runs: %s", len(swept), swept[0])
    try:
        params_model, dataset_model = reads
        params = read_params(params_model)
        call(params, read_dataset(args.dataset, dataset_model, params.datasets))
    except PipelineError as error:
        print(f"{stage}: error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{stage}: interrupted; nothing was written in place", file=sys.stderr)
        sys.exit(130)
