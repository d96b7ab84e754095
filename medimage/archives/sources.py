"""Where an archive comes from: a local file or folder the user already has, or Kaggle (kagglehub, pinned version).

Credentials are never read, copied or logged here: kagglehub finds them itself (KAGGLE_API_TOKEN,
KAGGLE_USERNAME/KAGGLE_KEY, ~/.kaggle/...). Error messages are scrubbed of their values all the same.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import zipfile
from pathlib import Path

from medimage.archives import synthetic
from medimage.archives.packing import pack_folder
from medimage.atomic import atomic_file
from medimage.errors import PipelineError
from medimage.settings.fetch import FetchEntry, FetchSettings
from medimage.settings.files import dataset_file

log = logging.getLogger(__name__)

SECRET_VARIABLES = ("KAGGLE_KEY", "KAGGLE_API_TOKEN")
CREDENTIALS_HINT = (
    "set KAGGLE_API_TOKEN (or KAGGLE_USERNAME and KAGGLE_KEY), or put your token in ~/.kaggle/access_token "
    "(or kaggle.json), and check the network; or download the archive yourself and run with "
    "fetch.source=path and fetch.paths.{name}=<the .zip or unzipped folder>"
)


def find_local_archive(location: Path, dataset: FetchEntry) -> Path:
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


def copy_local(dataset: FetchEntry, location: str | None, destination: Path) -> str:
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


def warn_about_loose_credentials(home: Path | None = None) -> None:
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR", (home or Path.home()) / ".kaggle"))
    for name in ("kaggle.json", "access_token"):
        path = config_dir / name
        if path.is_file() and path.stat().st_mode & 0o077:
            log.warning("%s is readable by other users; run: chmod 600 %s", path, path)


def download_kaggle(handle: str, name: str, destination: Path) -> str:
    """Download the pinned version with kagglehub into its cache, then pack that folder to `destination`."""
    folder = kaggle_folder(handle, name)
    count = pack_folder(folder, destination)
    return f"downloaded {handle} ({count} files)"


def kaggle_folder(handle: str, name: str) -> Path:
    """The unpacked download of a pinned Kaggle handle (kagglehub's cache); PipelineError with what to do."""
    warn_about_loose_credentials()
    try:
        import kagglehub

        return Path(kagglehub.dataset_download(handle))
    except (Exception, SystemExit) as error:  # the kaggle client raises SystemExit when it has no credentials
        reason = _scrub(" ".join(str(error).split()))[:200] or type(error).__name__
        raise PipelineError(
            f"could not download {handle} from Kaggle ({type(error).__name__}: {reason}); "
            + CREDENTIALS_HINT.format(name=name)
        ) from None


def fetch_archive(dataset: FetchEntry, settings: FetchSettings, destination: Path) -> str:
    """Write the archive to `destination` atomically, from the dataset's source (its registry key `fetch`, else
    params.yaml's fetch.source); return what was done, for the log."""
    source = dataset.fetch or settings.source
    with atomic_file(destination) as temporary:
        if source == "synthetic":
            if dataset.synthetic is None:
                raise PipelineError(
                    f"{dataset_file(dataset.name)} has no synthetic section; "
                    f"use fetch.source=path (or kaggle) for {dataset.name}"
                )
            count = synthetic.write_archive(dataset, settings.synthetic, temporary)
            return f"generated a synthetic archive ({count} members)"
        if source == "path":
            return copy_local(dataset, settings.paths.get(dataset.name), temporary)
        if dataset.kaggle is None:
            raise PipelineError(
                f"{dataset_file(dataset.name)} names no kaggle handle (owner/slug/versions/N); set it, or use "
                f"fetch: path with fetch.paths.{dataset.name} in params.yaml"
            )
        return download_kaggle(dataset.kaggle, dataset.name, temporary)


def provenance(dataset: FetchEntry, settings: FetchSettings, archive: Path) -> dict:
    """Where the archive came from and what it is, for reports: no local path (it differs between machines)."""
    digest = hashlib.sha256()
    with archive.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return {
        "source": dataset.fetch or settings.source,
        "kaggle": dataset.kaggle,
        "archive": dataset.archive,
        "bytes": archive.stat().st_size,
        "sha256": digest.hexdigest(),
    }
