"""Lay out split folders by hardlinking the interim files: no image bytes are copied where the file system allows."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

# Errors that mean "this file system (or this pair of folders) cannot hardlink", not "this file is broken".
NO_LINK_ERRORS = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES}
log = logging.getLogger(__name__)


@dataclass
class LinkReport:
    linked: int = 0
    copied: int = 0
    copy_reason: str = ""
    renamed: list[str] = field(default_factory=list)


def place_file(source: Path, target: Path | str, report: LinkReport) -> None:
    """Hardlink `source` at `target`; from the first failure on, copy (and say why once)."""
    if not report.copy_reason:
        try:
            os.link(source, target)
            report.linked += 1
            return
        except OSError as error:
            if error.errno not in NO_LINK_ERRORS:
                raise
            report.copy_reason = f"{error.strerror} ({Path(source).parent} -> {Path(target).parent})"
            log.warning("cannot hardlink here: %s; copying image bytes instead", report.copy_reason)
    shutil.copy2(source, target)  # with its modification time: the view check compares it
    report.copied += 1


def target_paths(
    splits: Sequence[str], labels: Sequence[str], paths: Sequence[str], source_splits: Sequence[str]
) -> list[str]:
    """`<split>/<label>/<file>` (`<split>/<file>` for the label "": a multi-label image), prefixed with the source
    split where two archive splits held the same name."""
    taken: set[str] = set()
    targets = []
    for split, label, path, source_split in zip(splits, labels, paths, source_splits, strict=True):
        name = PurePosixPath(path).name
        folder = f"{split}/{label}" if label else split
        target = f"{folder}/{name}"
        counter = 1
        while target in taken:
            prefix = source_split if counter == 1 else f"{source_split}{counter}"
            target = f"{folder}/{prefix}_{name}"
            counter += 1
        taken.add(target)
        targets.append(target)
    return targets


def materialise(sources: Sequence[Path], targets: Sequence[str], destination: Path, link: bool = True) -> LinkReport:
    """Place each source at destination/target. Plain strings in the loop: pathlib costs more than the link itself."""
    report = LinkReport(copy_reason="" if link else "split.link is copy")
    root = os.fspath(destination)
    for folder in sorted({target.rpartition("/")[0] for target in targets}):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    for source, target in zip(sources, targets, strict=True):
        place_file(source, os.path.join(root, target), report)
        if target.rpartition("/")[2] != os.path.basename(source):
            report.renamed.append(target)
    return report
