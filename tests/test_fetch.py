"""fetch from a local archive or folder, and from Kaggle at its boundary.

The download call is replaced; nothing leaves this machine.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from harness.project import make_project, stage
from medimage.archives import sources
from medimage.archives.sources import fetch_archive
from medimage.errors import PipelineError
from medimage.settings.fetch import FetchSettings
from medimage.settings.project import DatasetSpec
from tests.samples import jpeg_bytes, write_zip

MEMBERS = {
    "chest_xray/train/NORMAL/IM-0001-0001.jpeg": jpeg_bytes(),
    "chest_xray/test/PNEUMONIA/person1_virus_6.jpeg": jpeg_bytes(value=20),
}


def _names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return sorted(archive.namelist())


def _unzip(archive: Path, folder: Path) -> Path:
    with zipfile.ZipFile(archive) as handle:
        handle.extractall(folder)
    return folder


@pytest.mark.parametrize("file_name", ["chest-xray-pneumonia.zip", "archive.zip", "archive (1).zip", "my download.zip"])
def test_a_local_zip_is_copied_unchanged(tmp_path: Path, registry: dict[str, DatasetSpec], file_name: str) -> None:
    original = write_zip(tmp_path / file_name, MEMBERS)
    destination = tmp_path / "raw" / "chest_xray.zip"
    fetch_archive(
        registry["chest_xray"], FetchSettings(source="path", paths={"chest_xray": str(original)}), destination
    )
    assert destination.read_bytes() == original.read_bytes()
    assert destination.stat().st_ino != original.stat().st_ino  # a copy: DVC's cache never shares the user's own file


@pytest.mark.parametrize("file_name", ["chest-xray-pneumonia.zip", "archive.zip"])
def test_a_folder_holding_the_kaggle_named_zip_uses_that_zip(
    tmp_path: Path, registry: dict[str, DatasetSpec], file_name: str
) -> None:
    (tmp_path / "downloads").mkdir()
    original = write_zip(tmp_path / "downloads" / file_name, MEMBERS)
    destination = tmp_path / "raw.zip"
    fetch_archive(
        registry["chest_xray"],
        FetchSettings(source="path", paths={"chest_xray": str(tmp_path / "downloads")}),
        destination,
    )
    assert destination.read_bytes() == original.read_bytes()


def test_an_unzipped_folder_is_packed_deterministically(tmp_path: Path, registry: dict[str, DatasetSpec]) -> None:
    folder = _unzip(
        write_zip(tmp_path / "x.zip", MEMBERS), tmp_path / "versions" / "2"
    )  # what kagglehub and --unzip leave
    settings = FetchSettings(source="path", paths={"chest_xray": str(folder)})
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    fetch_archive(registry["chest_xray"], settings, first)
    (folder / "chest_xray" / "train" / "NORMAL" / "IM-0001-0001.jpeg").touch()  # a new mtime must not change the bytes
    fetch_archive(registry["chest_xray"], settings, second)
    assert _names(first) == sorted(MEMBERS)
    assert first.read_bytes() == second.read_bytes()


def test_path_errors_name_the_key(tmp_path: Path, registry: dict[str, DatasetSpec]) -> None:
    with pytest.raises(PipelineError, match=r"fetch.paths.chest_xray is not set in params.yaml"):
        fetch_archive(registry["chest_xray"], FetchSettings(source="path"), tmp_path / "raw.zip")
    with pytest.raises(PipelineError, match=r"fetch.paths.chest_xray points to .*missing.zip, which does not exist"):
        fetch_archive(
            registry["chest_xray"],
            FetchSettings(source="path", paths={"chest_xray": str(tmp_path / "missing.zip")}),
            tmp_path / "raw.zip",
        )
    (tmp_path / "page.zip").write_text("<html>")
    with pytest.raises(PipelineError, match="is not a zip archive"):
        fetch_archive(
            registry["chest_xray"],
            FetchSettings(source="path", paths={"chest_xray": str(tmp_path / "page.zip")}),
            tmp_path / "raw.zip",
        )
    assert not (tmp_path / "raw.zip").exists()


def test_kaggle_downloads_the_pinned_version_and_packs_it(
    tmp_path: Path, registry: dict[str, DatasetSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    import kagglehub

    folder = _unzip(write_zip(tmp_path / "x.zip", MEMBERS), tmp_path / "cache" / "versions" / "2")
    asked = []
    monkeypatch.setattr(kagglehub, "dataset_download", lambda handle, **_: asked.append(handle) or str(folder))
    fetch_archive(registry["chest_xray"], FetchSettings(source="kaggle"), tmp_path / "raw.zip")
    assert asked == ["paultimothymooney/chest-xray-pneumonia/versions/2"]
    assert _names(tmp_path / "raw.zip") == sorted(MEMBERS)


@pytest.mark.parametrize("failure", [ConnectionError("Failed to resolve 'www.kaggle.com'"), SystemExit(1)])
def test_kaggle_offline_or_without_credentials_says_what_to_set_and_leaks_no_secret(
    tmp_path: Path, registry: dict[str, DatasetSpec], monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    import kagglehub

    monkeypatch.setenv("KAGGLE_KEY", "secret-key-1234567890")

    def refuse(handle: str, **_: object) -> str:
        raise (
            type(failure)(f"{failure} (key secret-key-1234567890)") if isinstance(failure, ConnectionError) else failure
        )

    monkeypatch.setattr(kagglehub, "dataset_download", refuse)
    with pytest.raises(PipelineError) as caught:
        fetch_archive(registry["chest_xray"], FetchSettings(source="kaggle"), tmp_path / "raw.zip")
    message = str(caught.value)
    assert "could not download paultimothymooney/chest-xray-pneumonia/versions/2 from Kaggle" in message
    assert "KAGGLE_API_TOKEN" in message and "fetch.paths.chest_xray" in message
    assert "secret-key-1234567890" not in message
    assert not (tmp_path / "raw.zip").exists()


def test_loose_kaggle_credentials_are_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / ".kaggle").mkdir()
    token = tmp_path / ".kaggle" / "kaggle.json"
    token.write_text('{"username": "u", "key": "k"}')
    monkeypatch.delenv("KAGGLE_CONFIG_DIR", raising=False)
    token.chmod(0o644)
    sources.warn_about_loose_credentials(home=tmp_path)
    assert [record.levelname for record in caplog.records] == ["WARNING"]
    assert f"chmod 600 {token}" in caplog.text
    caplog.clear()
    token.chmod(0o600)
    sources.warn_about_loose_credentials(home=tmp_path)
    assert caplog.records == []


def test_the_stage_entry_point_fails_offline_with_one_line(tmp_path: Path) -> None:
    """The real kagglehub, no network here: the stage exits 1 with one line, no traceback."""
    project = make_project(tmp_path / "project", {"fetch": {"source": "kaggle"}})
    result = stage(project, "fetch", "blood_cells")
    assert result.returncode == 1, result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("fetch: error:")]
    assert len(errors) == 1 and "KAGGLE_API_TOKEN" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (project / "data" / "raw" / "blood_cells.zip").exists()


def test_synthetic_source_needs_a_synthetic_section(tmp_path: Path, registry: dict[str, DatasetSpec]) -> None:
    bare = registry["chest_xray"].model_copy(update={"synthetic": None})
    with pytest.raises(PipelineError, match="has no synthetic section; use fetch.source=path"):
        fetch_archive(bare, FetchSettings(), tmp_path / "raw.zip")
    assert sys.modules.get("tensorflow") is None  # fetch never imports TensorFlow
