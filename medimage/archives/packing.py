"""Write zip archives whose bytes depend only on their contents: fixed dates, fixed modes, sorted members."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from tqdm import tqdm

from medimage.errors import PipelineError

ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # every member's timestamp: the same files give the same archive bytes


def member_info(name: str, compression: int) -> zipfile.ZipInfo:
    """A member header with the fixed date and an ordinary file's mode (rw-r--r--)."""
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = compression
    info.external_attr = 0o644 << 16
    return info


def pack_folder(folder: Path, destination: Path) -> int:
    """Zip an unzipped download, uncompressed and in sorted order, so that the same files give the same bytes."""
    files = sorted(path for path in folder.rglob("*") if path.is_file() and not path.is_symlink())
    if not files:
        raise PipelineError(f"{folder} holds no files")
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path in tqdm(files, desc=f"packing {folder.name}", unit="file", disable=None, leave=False):
            info = member_info(path.relative_to(folder).as_posix(), zipfile.ZIP_STORED)
            with path.open("rb") as source, archive.open(info, "w", force_zip64=True) as target:
                shutil.copyfileobj(source, target, 1024 * 1024)
    return len(files)
