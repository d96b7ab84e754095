"""One exception type for everything a user can fix, and the entry-point wrapper that prints it."""

from __future__ import annotations

import sys
from collections.abc import Callable


class PipelineError(Exception):
    """A problem with the user's data, archive or params, described so that they can act on it."""


def run_stage(stage: str, main: Callable[[list[str]], None], argv: list[str] | None = None) -> None:
    """Run a stage's main(); turn a PipelineError into one line on stderr and exit status 1."""
    try:
        main(sys.argv[1:] if argv is None else argv)
    except PipelineError as error:
        print(f"{stage}: error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{stage}: interrupted; nothing was written in place", file=sys.stderr)
        sys.exit(130)
