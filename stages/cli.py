"""The entry point every stage shares: `python -m stages.<stage> <dataset>`.

Parses the dataset name, validates params.yaml and the dataset's registry entry once, then runs the stage.
A PipelineError becomes one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from stages.config import DatasetSpec, Params, load_dataset, load_params
from stages.errors import PipelineError


def run_stage(stage: str, main: Callable[[Params, DatasetSpec], None], description: str | None, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m stages.{stage}", description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", help="a dataset listed under 'datasets' in params.yaml")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        params = load_params()
        main(params, load_dataset(args.dataset, params))
    except PipelineError as error:
        print(f"{stage}: error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{stage}: interrupted; nothing was written in place", file=sys.stderr)
        sys.exit(130)
