"""What every benchmark script shares: its command line, where it keeps data, and how it times things."""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.project import ROOT

DEFAULT_REPEAT = 3
CACHE = Path(".benchmarks-cache").resolve()  # generated inputs, built once and reused by later runs


def arguments(description: str | None) -> argparse.ArgumentParser:
    """A parser with --repeat; scripts add their own options before parse_args()."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--repeat", type=int, default=DEFAULT_REPEAT, help="runs per measurement; the median is reported"
    )
    return parser


def seconds(action: Callable[[], object]) -> float:
    """Wall-clock seconds one call of `action` takes."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def median_seconds(action: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None) -> float:
    """The median of `repeat` timed calls of `action`, each after an untimed `setup`."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        times.append(seconds(action))
    return statistics.median(times)


def in_scratch(action: Callable[[Path], object]) -> Callable[[], None]:
    """`action` given a fresh empty folder under CACHE, deleted afterwards."""

    def run() -> None:
        CACHE.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
            action(Path(scratch))

    return run


def refresh_code(project: Path, names: tuple[str, ...] = ("stages", "medimage", "dvc.yaml", ".dvc/config")) -> None:
    """Copy the current code and pipeline into a cached project, so that a benchmark measures them, not old ones."""
    for name in names:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, project / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, project / name)
