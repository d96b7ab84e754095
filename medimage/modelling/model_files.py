"""Saved Keras models whose bytes depend only on the model: no save date, no zip entry times, no memory addresses.

Keras writes `date_saved` into metadata.json, the current time into the weights entry's zip header, and the
Python id() (a memory address) of each shared object, such as a layer's dtype policy, into config.json as its
`shared_object_id`. Two saves of identical weights would differ, and DVC would rerun everything downstream of
a retrain that changed nothing. Shared-object ids are renumbered in order of first appearance: Keras only uses
them to tell which entries are the same object.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Protocol

from medimage.archives.packing import member_info
from medimage.atomic import atomic_file

METADATA = "metadata.json"
CONFIG = "config.json"
TIMESTAMP_KEYS = ("date_saved",)
SHARED_OBJECT = "shared_object_id"


class Saveable(Protocol):
    def save(self, filepath: str | Path) -> None: ...


def save_keras_model(model: Saveable, path: Path) -> None:
    """`model.save(path)`, then the same archive with its timestamps removed (Keras loads it unchanged)."""
    model.save(path)
    strip_timestamps(path)


def strip_timestamps(path: Path) -> None:
    """Rewrite a .keras archive: fixed entry dates, metadata without its save date, entries in the same order."""
    with zipfile.ZipFile(path) as source:
        entries = [(info.filename, info.compress_type, source.read(info)) for info in source.infolist()]
    with atomic_file(path) as temporary, zipfile.ZipFile(temporary, "w") as target:
        for name, compression, data in entries:
            if name == METADATA:
                metadata = {key: value for key, value in json.loads(data).items() if key not in TIMESTAMP_KEYS}
                data = json.dumps(metadata).encode()
            elif name == CONFIG:
                data = json.dumps(renumber_shared_objects(json.loads(data), {})).encode()
            target.writestr(member_info(name, compression), data)


def renumber_shared_objects(node: object, numbers: dict[int, int]) -> object:
    """A copy of a Keras config with every `shared_object_id` replaced by 1, 2, ... in order of first appearance."""
    if isinstance(node, dict):
        return {
            key: numbers.setdefault(value, len(numbers) + 1)
            if key == SHARED_OBJECT and isinstance(value, int)
            else renumber_shared_objects(value, numbers)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [renumber_shared_objects(value, numbers) for value in node]
    return node
