"""What every benchmark script shares: its command line (how many repeats to take the median of)."""

from __future__ import annotations

import argparse

DEFAULT_REPEAT = 3


def arguments(description: str | None) -> argparse.ArgumentParser:
    """A parser with --repeat; scripts add their own options before parse_args()."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="runs per measurement; the median is reported")
    return parser
