"""Where an archive comes from: a local file or folder the user already has, or Kaggle (kagglehub, pinned version).

Credentials are never read, copied or logged here: kagglehub finds them itself (KAGGLE_API_TOKEN,
KAGGLE_USERNAME/KAGGLE_KEY, ~/.kaggle/...). Error messages are scrubbed of their values all the same.
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from pathlib import Path

from tqdm import tqdm

from stages.config import DatasetSpec
from stages.errors import PipelineError

ZIP_DATE = (2020, 1, 1, 0, 0, 0)
SECRET_VARIABLES = ("KAGGLE_KEY", "KAGGLE_API_TOKEN")
CREDENTIALS_HINT = (
    "set KAGGLE_API_TOKEN (or KAGGLE_USERNAME and KAGGLE_KEY), or put your token in ~/.kaggle/access_token "
    "(or kaggle.json), and check the network; or download the archive yourself and run with "
    "fetch.source=path and fetch.paths.{name}=<the .zip or unzipped folder>"
)


def find_local_archive(location: Path, dataset: DatasetSpec) -> Path:
    """The zip file to use for a path the user gave: the file itself, or the Kaggle-named zip inside a folder.

    A folder holding neither `<slug>.zip` (Kaggle CLI) nor `archive*.zip` (browser) is taken as an already
    unzipped download (`kaggle ... --unzip`, kagglehub) and returned as is.
    """
    if not location.exists():
        raise PipelineError(f"fetch.paths.{dataset.name} points to {location}, which does not exist")
    if location.is_file():
        if not zipfile.is_zipfile(location):
            raise PipelineError(f"fetch.paths.{dataset.name}: {location} is not a zip archive")
        return location
    for candidate in [location / dataset.archive, *sorted(location.glob("archive*.zip"))]:
        if candidate.is_file():
            return candidate
    return location


def pack_folder(folder: Path, destination: Path) -> int:
    """Zip an unzipped download, uncompressed and in sorted order, so that the same files give the same bytes."""
    files = sorted(path for path in folder.rglob("*") if path.is_file() and not path.is_symlink())
    if not files:
        raise PipelineError(f"{folder} holds no files")
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path in tqdm(files, desc=f"packing {folder.name}", unit="file", disable=None, leave=False):
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            with path.open("rb") as source, archive.open(info, "w", force_zip64=True) as target:
                shutil.copyfileobj(source, target, 1024 * 1024)
    return len(files)


def copy_local(dataset: DatasetSpec, location: str | None, destination: Path) -> str:
    """Copy (never link: DVC would then share the user's own file with its cache) or pack a local download."""
    if not location:
        raise PipelineError(f"fetch.source is 'path' but fetch.paths.{dataset.name} is not set in params.yaml")
    found = find_local_archive(Path(location).expanduser(), dataset)
    if found.is_dir():
        count = pack_folder(found, destination)
        return f"packed {count} files from the folder {found}"
    shutil.copyfile(found, destination)
    return f"copied {found}"


def _scrub(text: str) -> str:
    for variable in SECRET_VARIABLES:
        secret = os.environ.get(variable)
        if secret:
            text = text.replace(secret, "***")
    return text


def warn_about_loose_credentials(home: Path = Path.home()) -> None:
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR", home / ".kaggle"))
    for name in ("kaggle.json", "access_token"):
        path = config_dir / name
        if path.is_file() and path.stat().st_mode & 0o077:
            print(f"fetch: warning: {path} is readable by other users; run: chmod 600 {path}", file=sys.stderr)


def download_kaggle(dataset: DatasetSpec, destination: Path) -> str:
    """Download the pinned version with kagglehub into its cache, then pack that folder to `destination`."""
    warn_about_loose_credentials()
    try:
        import kagglehub

        folder = kagglehub.dataset_download(dataset.kaggle)
    except (Exception, SystemExit) as error:  # the kaggle client raises SystemExit when it has no credentials
        reason = _scrub(" ".join(str(error).split()))[:200] or type(error).__name__
        raise PipelineError(
            f"could not download {dataset.kaggle} from Kaggle ({type(error).__name__}: {reason}); "
            + CREDENTIALS_HINT.format(name=dataset.name)
        ) from None
    count = pack_folder(Path(folder), destination)
    return f"downloaded {dataset.kaggle} ({count} files)"
