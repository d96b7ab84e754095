"""Backups that let a killed training resume: what they must match, and where they say training stood.

A backup folder (models/.resume-<ds>/) holds a fingerprint of the train params and processed data, one
Keras BackupAndRestore folder per phase (train, fine_tune), a `<phase>.done.json` marker with the phase's
final weights once a phase is over, and the DVCLive curves logged so far. No TensorFlow here.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import shutil
from pathlib import Path

from medimage.atomic import atomic_file
from medimage.manifest import manifest_path
from medimage.settings.train import TrainSettings

PHASES = ("train", "fine_tune")
log = logging.getLogger(__name__)


def fingerprint(settings: TrainSettings, processed: Path) -> str:
    """What a backup must match to be resumed: the train params and the processed manifest."""
    digest = hashlib.sha256(settings.model_dump_json().encode())
    digest.update(manifest_path(processed).read_bytes())
    return digest.hexdigest()


def prepare(backup: Path, expected: str) -> bool:
    """Keep a backup only if it was made for the same params and data; True when there is one to resume."""
    stamp = backup / "fingerprint"
    if backup.is_dir() and (not stamp.is_file() or stamp.read_text() != expected):
        shutil.rmtree(backup)
        log.info("discarded a backup made for other params or data (%s)", backup)
    resuming = backup.is_dir()
    backup.mkdir(parents=True, exist_ok=True)
    stamp.write_text(expected)
    return resuming


EPOCH_RECORD = "training_metadata.json"  # what BackupAndRestore (and the multi-worker loop) says of its epoch


def phase_epochs(backup: Path, phase: str) -> int | None:
    """Epochs completed (counted from the start of training) by a phase's BackupAndRestore folder, if any."""
    try:
        return int(json.loads((backup / phase / EPOCH_RECORD).read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return None


def epochs_completed(backup: Path) -> int:
    """Epochs whose weights are in the backup, across phases: where a resumed run starts."""
    completed = 0
    for phase in PHASES:
        done = backup / f"{phase}.done.json"
        if done.is_file():
            completed = json.loads(done.read_text())["last_epoch"]
        else:
            completed = max(completed, phase_epochs(backup, phase) or 0)
    return completed


def trim_curves(curves: Path, steps: int) -> None:
    """Drop curve points from epochs after the backup (logged just before the kill, to be trained again)."""
    for table in curves.rglob("*.tsv"):
        with table.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle, delimiter="\t"))
        step = rows[0].index("step")
        kept = [rows[0], *(row for row in rows[1:] if int(row[step]) < steps)]
        if len(kept) < len(rows):
            with atomic_file(table) as temporary, temporary.open("w", newline="", encoding="utf-8") as handle:
                csv.writer(handle, delimiter="\t", lineterminator="\n").writerows(kept)
