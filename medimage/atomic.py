"""Write outputs so that an interrupted stage never leaves something that looks complete, nor anything stranded.

A folder output is built in a hidden `.tmp-build-*` folder *inside* its destination and promoted by renames at
the end. A killed run therefore leaves its half-built data inside the declared output, where DVC deletes it
before the stage's next run or restore from its cache (whatever runs next), and where `dvc status` shows the
output as changed. A file output is written to a hidden sibling and renamed over the destination.

Every temporary name carries the writer's process id. Every stage run starts by sweeping the output folders
for temporaries whose writer is dead (`sweep_leftovers`), which catches the few left between two renames and
those of killed file writes.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_PREFIX = ".tmp-"
_WRITER = re.compile(r"^\.tmp-.*?-p(\d+)-")


def temporary_name(stem: str) -> str:
    return f"{TEMP_PREFIX}{stem}-p{os.getpid()}-"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _writer_is_gone(name: str) -> bool:
    """True for a temporary whose writing process has ended (or that names none: an older layout).

    A killed writer whose parent died with it is a zombie until the system's init reaps it, which can take seconds
    (measured 1.5-2 s in a container whose PID 1 reaps lazily): `kill(pid, 0)` still succeeds on it, so a zombie
    counts as ended (Linux tells by /proc/<pid>/stat; elsewhere a zombie waits for the next sweep)."""
    match = _WRITER.match(name)
    if match is None:
        return True
    pid = int(match.group(1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]  # the state follows the command name in parentheses


def sweep_leftovers(roots: Iterable[Path], depth: int = 3) -> list[Path]:
    """Delete temporaries of dead writers up to `depth` folder levels under each root; return what was deleted.

    Only folder listings are read (never the files of a dataset), so this costs milliseconds.
    """
    removed: list[Path] = []
    level = [root for root in roots if root.is_dir()]
    for _ in range(depth):
        below: list[Path] = []
        for folder in level:
            for entry in os.scandir(folder):
                path = Path(entry.path)
                if entry.name.startswith(TEMP_PREFIX):
                    if _writer_is_gone(entry.name):
                        _remove(path)
                        removed.append(path)
                elif entry.is_dir(follow_symlinks=False):
                    below.append(path)
        level = below
    return removed


@contextmanager
def atomic_dir(destination: Path) -> Iterator[Path]:
    """Yield an empty folder to fill; on success its contents replace `destination`'s, on failure it is deleted.

    An earlier `destination` stays untouched until the new one is complete (a failing rerun by hand loses
    nothing). Under DVC there is none: DVC deletes a stage's outputs before running it.
    """
    existed = destination.is_dir()
    destination.mkdir(parents=True, exist_ok=True)
    sweep_leftovers([destination], depth=1)
    build = Path(tempfile.mkdtemp(prefix=temporary_name("build"), dir=destination))
    build.chmod(0o755)  # mkdtemp makes it private; outputs are ordinary folders
    try:
        yield build
    except BaseException:
        _remove(build)
        if not existed and not any(destination.iterdir()):
            destination.rmdir()
        raise
    _promote(build, destination)


def _promote(build: Path, destination: Path) -> None:
    """Make `build` (inside `destination`) the destination, by renames; then delete the earlier contents, if any."""
    stem = f"{destination.name}-p{os.getpid()}"
    ready = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{stem}-ready-", dir=destination.parent))
    ready.rmdir()
    build.rename(ready)
    earlier = list(destination.iterdir())
    if earlier:
        retired = ready.with_name(ready.name.replace("-ready-", "-old-"))
        destination.rename(retired)
        ready.rename(destination)
        inside = destination / f"{temporary_name('old')}{retired.name[-8:]}"
        retired.rename(inside)  # deleted from inside the output: a kill during the delete strands nothing
        _remove(inside)
    else:
        destination.rmdir()
        ready.rename(destination)


@contextmanager
def atomic_file(destination: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `destination`."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=temporary_name(destination.name), dir=destination.parent)
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
