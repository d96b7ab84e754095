"""Write outputs so that an interrupted stage never leaves something that looks complete, nor anything stranded.

A folder output is built in a hidden `.tmp-build-*` folder *inside* its destination and promoted by renames at
the end. A killed run therefore leaves its half-built data inside the declared output, where DVC deletes it
before the stage's next run or restore from its cache (whatever runs next), and where `dvc status` shows the
output as changed. A file output is written to a hidden sibling and renamed over the destination.

Every temporary is recorded before it is made, in a journal entry named for the writer's process
(.cache/temporaries/p<pid>-<random>) that lists its paths. Every stage run starts by deleting the recorded
temporaries of dead writers (`sweep_leftovers`), which catches the few left between two renames and those of
killed file writes. Temporaries are told apart by that record alone, never by their names: an archive's label or
file may be called anything, `.tmp-cells` included, and the sweep never lists an output folder.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import shutil
import signal
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from medimage.paths import TEMPORARIES

TEMP_PREFIX = ".tmp-"
_ENTRY = re.compile(r"^p(\d+)-[0-9a-f]+(\.part)?$")  # .part: an entry being written, not yet one


def _fresh(parent: Path, stem: str) -> Path:
    """A temporary's path: hidden, with a random part, never created before it is recorded."""
    return parent / f"{TEMP_PREFIX}{stem}-{secrets.token_hex(4)}"


def _write_entry(record: dict) -> Path:
    """A journal entry of this process holding `record`, whole or not at all (written aside, then renamed)."""
    TEMPORARIES.mkdir(parents=True, exist_ok=True)
    entry = TEMPORARIES / f"p{os.getpid()}-{secrets.token_hex(8)}"
    part = entry.with_name(entry.name + ".part")
    part.write_text(json.dumps(record), encoding="utf-8")
    part.rename(entry)
    return entry


@contextmanager
def _recorded(paths: Iterable[Path]) -> Iterator[None]:
    """Record `paths` as temporaries of this process while the block runs, so that a sweep after a kill deletes
    exactly them. The record is written before any of them exists and deleted after none is left."""
    entry = _write_entry({"temporaries": [str(path.absolute()) for path in paths]})
    try:
        yield
    finally:
        entry.unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _writer_is_gone(entry: str) -> bool:
    """True for a journal entry whose writing process has ended (or a name no writer of ours makes).

    A killed writer whose parent died with it is a zombie until the system's init reaps it, which can take seconds
    (measured 1.5-2 s in a container whose PID 1 reaps lazily): `kill(pid, 0)` still succeeds on it, so a zombie
    counts as ended (Linux tells by /proc/<pid>/stat; elsewhere a zombie waits for the next sweep)."""
    match = _ENTRY.match(entry)
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


def _read_entry(entry: Path) -> dict:
    if entry.name.endswith(".part"):
        return {}
    try:
        record = json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def sweep_leftovers() -> list[Path]:
    """Finish the interrupted commits of dead writers, then delete their recorded temporaries; return what was
    deleted.

    Only the journal is read: no output folder is listed, so no name an archive puts in an output (a label
    called `.tmp-cells`) can be taken for a temporary.
    """
    if not TEMPORARIES.is_dir():
        return []
    ended = {entry: _read_entry(entry) for entry in sorted(TEMPORARIES.iterdir()) if _writer_is_gone(entry.name)}
    for record in ended.values():
        for temporary, destination in record.get("renames", []):
            if Path(temporary).exists():
                os.replace(temporary, destination)  # every temporary of a commit was complete before its record
    removed: list[Path] = []
    for entry, record in ended.items():
        for path in map(Path, record.get("temporaries", [])):
            if path.exists() or path.is_symlink():
                _remove(path)
                removed.append(path)
        entry.unlink(missing_ok=True)
    return removed


@contextmanager
def temporary_dir(parent: Path, stem: str) -> Iterator[Path]:
    """A new hidden folder in `parent`, recorded for the sweep, deleted when the block ends (what it still holds)."""
    folder = _fresh(parent, stem)
    with _recorded([folder]):
        folder.mkdir()
        try:
            yield folder
        finally:
            _remove(folder)


@contextmanager
def atomic_dir(destination: Path) -> Iterator[Path]:
    """Yield an empty folder to fill; on success its contents replace `destination`'s, on failure it is deleted.

    An earlier `destination` stays untouched until the new one is complete (a failing rerun by hand loses
    nothing). Under DVC there is none: DVC deletes a stage's outputs before running it.
    """
    existed = destination.is_dir()
    destination.mkdir(parents=True, exist_ok=True)
    build = _fresh(destination, "build")
    with _recorded([build]):
        build.mkdir()
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
    ready = _fresh(destination.parent, f"{destination.name}-ready")
    retired = _fresh(destination.parent, f"{destination.name}-old")
    inside = _fresh(destination, "old")
    with _recorded([ready, retired, inside]):
        build.rename(ready)
        if any(destination.iterdir()):
            destination.rename(retired)
            ready.rename(destination)
            retired.rename(inside)  # deleted from inside the output: a kill during the delete strands nothing
            _remove(inside)
        else:
            destination.rmdir()
            ready.rename(destination)


@contextmanager
def atomic_files(destinations: list[Path]) -> Iterator[list[Path]]:
    """Yield a temporary path per destination; on success they replace their destinations together.

    The renames are recorded before the first one and made with interrupts held back: a Ctrl-C waits for them,
    and a kill between two of them is finished by the next sweep. So every destination changes, or none does.
    """
    for destination in destinations:
        destination.parent.mkdir(parents=True, exist_ok=True)
    temporaries = [_fresh(destination.parent, destination.name) for destination in destinations]
    with _recorded(temporaries):
        try:
            for temporary in temporaries:
                temporary.touch(mode=0o644, exist_ok=False)
            yield temporaries
        except BaseException:
            for temporary in temporaries:
                _remove(temporary)
            raise
        if len(destinations) == 1:
            os.replace(temporaries[0], destinations[0])  # one rename: atomic already
        else:
            _commit(list(zip(temporaries, destinations, strict=True)))


def _commit(renames: list[tuple[Path, Path]]) -> None:
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        record = _write_entry(
            {"renames": [[str(source.absolute()), str(target.absolute())] for source, target in renames]}
        )
        for source, target in renames:
            os.replace(source, target)
        record.unlink()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def atomic_file(destination: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `destination`."""
    with atomic_files([destination]) as (temporary,):
        yield temporary


def write_json(destination: Path, data: object) -> None:
    with atomic_file(destination) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_csv(destination: Path, columns: list[str], rows: Iterable[dict], spreadsheet: bool = False) -> None:
    """A CSV file with a header row, '\\n' line ends and UTF-8. `spreadsheet`: a file meant to be opened in a
    spreadsheet, whose text cells from an archive (labels, paths, table cells) are neutralised (`spreadsheet_cell`);
    manifests the pipeline reads back stay raw."""
    with atomic_file(destination) as temporary, temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([spreadsheet_cell(column) if spreadsheet else column for column in columns])
        for row in rows:
            cells = [row.get(column, "") for column in columns]
            writer.writerow([spreadsheet_cell(cell) for cell in cells] if spreadsheet else cells)


FORMULA = re.compile(r"^[=+@\t\r]|^-(?![0-9.])")  # OWASP: a leading = + @ (or tab, CR), or - not starting a number


def spreadsheet_cell(cell: object) -> object:
    """A text cell that a spreadsheet would run as a formula, led by a quote so that it shows as text (OWASP's
    advice on CSV injection); numbers and other text as they are."""
    return f"'{cell}" if isinstance(cell, str) and FORMULA.match(cell) else cell
