"""The processed view: data/processed/<ds>/<split>/<label>/<file>, hardlinks to the interim files the manifest names.

DVC tracks split's manifest (which image is in which split), not these folders: a re-split then changes one
file for DVC to hash instead of tens of thousands of paths. The folders are a git-ignored view that split
builds and that train and evaluate check before they read it: every manifest row's file is there as the same
inode as its interim file, nothing is missing and nothing is extra. The check costs no `stat` for hardlinks
(directory entries carry inode numbers); where the file system could not hardlink, the view holds copies and
each is checked by size and modification time (one `stat` for it and one for its interim file). A view that
fails the check is rebuilt, in one log line: after a `dvc checkout`, a `dvc pull`, a hand edit, or in a
queued experiment's fresh copy of the workspace.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from medimage import manifest
from medimage.atomic import temporary_dir
from medimage.manifest import ProcessedRow
from medimage.paths import INTERIM_DIR, PROCESSED_DIR
from medimage.settings.split import SPLIT_NAMES, SplitEntry, SplitSettings, split_settings
from medimage.splitting.materialising import LinkReport, materialise

log = logging.getLogger(__name__)


def _entries(root: str, prefix: str = "") -> Iterator[tuple[str, os.DirEntry]]:
    """(relative path, entry) of every file under `root`, from directory listings alone."""
    with os.scandir(root) as listing:
        for entry in listing:
            relative = f"{prefix}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                yield from _entries(entry.path, f"{relative}/")
            else:
                yield relative, entry


def _files(root: Path, folders: Sequence[str]) -> dict[str, os.DirEntry]:
    found: dict[str, os.DirEntry] = {}
    for folder in folders:
        if (root / folder).is_dir():
            found.update(_entries(os.fspath(root / folder), f"{folder}/"))
    return found


def _same_file(view: os.DirEntry, interim: os.DirEntry) -> bool:
    if view.inode() == interim.inode():
        return True
    shown, original = view.stat(follow_symlinks=False), interim.stat()  # a copy: size and time, as copy2 left them
    return shown.st_size == original.st_size and shown.st_mtime_ns == original.st_mtime_ns


def differences(processed: Path, interim: Path, rows: Sequence[ProcessedRow]) -> list[str]:
    """What is wrong with the view, one phrase per kind of problem; empty when it matches the manifest."""
    view = _files(processed, SPLIT_NAMES)
    sources = _files(interim, sorted({row.interim_path.split("/", 1)[0] for row in rows}))
    wanted = {row.path: row.interim_path for row in rows}
    missing = [path for path in wanted if path not in view]
    extra = [path for path in view if path not in wanted]
    changed = [
        path
        for path, source in wanted.items()
        if path in view and (source not in sources or not _same_file(view[path], sources[source]))
    ]
    return [
        f"{len(found)} {kind} (e.g. {processed / found[0]})"
        for kind, found in (("missing", missing), ("not in the manifest", extra), ("not the interim file", changed))
        if found
    ]


def build(processed: Path, interim: Path, rows: Sequence[ProcessedRow], link: bool = True) -> LinkReport:
    """Lay out the split folders anew in a temporary folder beside the manifest, then swap them in by renames.

    A kill leaves at worst a view that fails the check (and is rebuilt) and a temporary that the next stage sweeps.
    """
    with temporary_dir(processed, "view") as staging:
        report = materialise([interim / row.interim_path for row in rows], [row.path for row in rows], staging, link)
        for split in SPLIT_NAMES:
            if (processed / split).exists():
                (processed / split).rename(staging / f"old-{split}")
            if (staging / split).is_dir():
                (staging / split).rename(processed / split)
    return report


def ensure_view(processed: Path, interim: Path, link: bool) -> list[ProcessedRow]:
    """Check the view against the processed manifest; rebuild it (hardlinks, or copies where `link` is False) when
    it does not match (one log line). The manifest's rows, read once for the caller too."""
    rows = manifest.read_processed(processed)
    found = differences(processed, interim, rows)
    if found:
        report = build(processed, interim, rows, link)
        log.info(
            "rebuilt the split folders in %s from its manifest (%s; %d linked, %d copied)",
            processed,
            ", ".join(found),
            report.linked,
            report.copied,
        )
    return rows


def dataset_view(project: SplitSettings, dataset: SplitEntry) -> tuple[Path, list[ProcessedRow]]:
    """The dataset's processed folder, its view checked and, where needed, rebuilt as split.link says (`project`:
    params.yaml's split section, under the dataset's overrides); and its manifest's rows."""
    processed = PROCESSED_DIR / dataset.name
    rows = ensure_view(processed, INTERIM_DIR / dataset.name, split_settings(project, dataset).link == "hardlink")
    return processed, rows
