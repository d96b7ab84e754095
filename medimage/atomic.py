"""Write outputs so that an interrupted stage never leaves something that looks complete.

Files and folders are built under a hidden temporary name beside their destination and renamed into place
at the end (rename is atomic within one file system). Leftovers of a killed run are removed on the next one.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_PREFIX = ".tmp-"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def remove_leftovers(destination: Path) -> None:
    """Delete temporary siblings left by an earlier, killed run for this destination."""
    if destination.parent.is_dir():
        for leftover in destination.parent.glob(f"{TEMP_PREFIX}{destination.name}-*"):
            _remove(leftover)


@contextmanager
def atomic_dir(destination: Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces `destination`, on failure it is deleted."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(destination)
    temporary = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{destination.name}-", dir=destination.parent))
    temporary.chmod(0o755)  # mkdtemp makes it private; outputs are ordinary folders
    try:
        yield temporary
        _remove(destination)
        temporary.rename(destination)
    except BaseException:
        _remove(temporary)
        raise


@contextmanager
def atomic_file(destination: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `destination`."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(destination)
    handle, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{destination.name}-", dir=destination.parent)
    os.close(handle)
    temporary = Path(name)
    temporary.chmod(0o644)
    try:
        yield temporary
        os.replace(temporary, destination)
    except BaseException:
        _remove(temporary)
        raise


def write_json(destination: Path, data: object) -> None:
    with atomic_file(destination) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_csv(destination: Path, columns: list[str], rows: Iterable[dict]) -> None:
    """A CSV file with a header row, '\\n' line ends and UTF-8: the one CSV writer of the project."""
    with atomic_file(destination) as temporary, temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
