"""Hostile and broken archives are refused with a clear message; nothing is written outside the output folder."""

from __future__ import annotations

import csv
import stat
import zipfile
from pathlib import Path

import pytest
import yaml

from harness.project import files_under, make_project, stage
from medimage.archives.unpacking import restructure
from medimage.errors import PipelineError
from medimage.settings.restructure import RestructureSettings
from tests.samples import TOY, jpeg_bytes, png_bytes, write_zip

GOOD = {"root/train/cat/a.jpg": jpeg_bytes(), "root/train/dog/b.jpg": jpeg_bytes(value=30)}


def _restructure(tmp_path: Path, members: dict[str, bytes], settings: RestructureSettings | None = None) -> dict:
    archive = write_zip(tmp_path / "toy.zip", members)
    return restructure(archive, TOY, settings or RestructureSettings(), tmp_path / "work" / "interim" / "toy")


def _assert_nothing_written(tmp_path: Path) -> None:
    """A refused archive leaves no output folder, no temporary folder and no file anywhere else."""
    assert files_under(tmp_path) == {"toy.zip"}


@pytest.mark.parametrize(
    "evil",
    [
        "../escape.jpg",
        "root/train/cat/../../../../escape.jpg",
        "/tmp/absolute.jpg",
        "C:/windows.jpg",
        "..\\..\\backslash.jpg",
        "root/train/cat/..\\..\\x.jpg",
    ],
)
def test_member_paths_that_escape_are_refused(tmp_path: Path, evil: str) -> None:
    with pytest.raises(PipelineError, match="unsafe member path"):
        _restructure(tmp_path, {**GOOD, evil: jpeg_bytes()})
    _assert_nothing_written(tmp_path)


def test_symlink_members_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "toy.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for name, data in GOOD.items():
            handle.writestr(name, data)
        link = zipfile.ZipInfo("root/train/cat/link.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        handle.writestr(link, "/etc/passwd")
    with pytest.raises(PipelineError, match="symbolic link"):
        restructure(archive, TOY, RestructureSettings(), tmp_path / "work" / "toy")
    _assert_nothing_written(tmp_path)


def test_a_member_past_the_size_limit_is_refused(tmp_path: Path) -> None:
    big = b"\xff\xd8" + bytes(2 * 1024 * 1024)
    with pytest.raises(PipelineError, match=r"declares 2\.0 MB, over the limit of 1 MB \(restructure.max_member_mb\)"):
        _restructure(tmp_path, {**GOOD, "root/train/cat/big.jpg": big}, RestructureSettings(max_member_mb=1))
    _assert_nothing_written(tmp_path)


def test_a_high_compression_ratio_is_refused(tmp_path: Path) -> None:
    bomb = bytes(50 * 1024 * 1024)  # 50 MB of zeros deflate to about 50 KB
    with pytest.raises(PipelineError, match=r"expands [\d,]+x, over the limit of 100x \(restructure.max_ratio\)"):
        _restructure(tmp_path, {**GOOD, "root/train/cat/bomb.jpg": bomb})
    _assert_nothing_written(tmp_path)


def test_the_total_size_limit_applies_to_the_whole_archive(tmp_path: Path) -> None:
    members = {f"root/train/cat/{index}.png": bytes(600 * 1024) for index in range(4)}
    with pytest.raises(PipelineError, match="max_total_gb"):
        _restructure(tmp_path, members, RestructureSettings(max_total_gb=2 / 1024, max_ratio=10_000))
    _assert_nothing_written(tmp_path)


def test_a_member_lying_about_its_size_is_stopped_at_the_declared_size(tmp_path: Path) -> None:
    """Rewrite a deflated member's header sizes to claim 10 bytes: reading stops there, never inflating the rest."""
    archive = write_zip(tmp_path / "toy.zip", {"root/train/cat/a.jpg": jpeg_bytes(size=(200, 200))})
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as handle:
        info = handle.infolist()[0]
    real_size = info.file_size.to_bytes(4, "little")
    assert data.count(real_size) == 2  # local header and central directory
    archive.write_bytes(bytes(data).replace(real_size, (10).to_bytes(4, "little")))
    with pytest.raises(
        PipelineError, match="all 1 images matching the layout are corrupt"
    ):  # the CRC no longer matches
        restructure(archive, TOY, RestructureSettings(), tmp_path / "work" / "toy")
    _assert_nothing_written(tmp_path)


def test_a_file_that_is_not_a_zip_gives_one_clear_line(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    (project / "data" / "raw").mkdir(parents=True)
    (project / "data" / "raw" / "chest_xray.zip").write_text("<html>rate limited</html>")
    result = stage(project, "restructure", "chest_xray")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "is not a readable zip archive" in result.stderr and "Traceback" not in result.stderr
    assert not (project / "data" / "interim").exists() or not any((project / "data" / "interim").iterdir())


def test_an_unknown_layout_names_the_dataset_and_the_top_level_entries(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    (project / "data" / "raw").mkdir(parents=True)
    write_zip(
        project / "data" / "raw" / "chest_xray.zip", {"xrays/train/NORMAL/a.jpeg": jpeg_bytes(), "notes.txt": b"hello"}
    )
    result = stage(project, "restructure", "chest_xray")
    assert result.returncode == 1
    line = result.stderr.strip()
    assert "\n" not in line
    assert "chest_xray: no member of the archive matches the layout" in line
    assert "datasets/chest_xray.yaml" in line and "notes.txt, xrays/" in line


def test_duplicate_member_names_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "toy.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("root/train/cat/a.jpg", jpeg_bytes())
        with pytest.warns(UserWarning, match="Duplicate name"):
            handle.writestr("root/train/cat/a.jpg", jpeg_bytes(value=10))
    with pytest.raises(PipelineError, match="occurs twice"):
        restructure(archive, TOY, RestructureSettings(), tmp_path / "work" / "toy")


def _corrupt_members() -> dict[str, bytes]:
    jpeg = jpeg_bytes(size=(64, 64))
    return {
        **GOOD,
        "root/train/cat/truncated.jpg": jpeg[: len(jpeg) // 2],
        "root/train/cat/empty.jpg": b"",
        "root/train/dog/text.jpg": b"this is not an image at all",
        "root/train/dog/png-behind-jpg.jpg": png_bytes(),
        "root/train/dog/._b.jpg": b"\x00\x05\x16\x07 AppleDouble",
        "root/train/dog/readme.txt": b"not in the layout: wrong extension",
    }


def test_corrupt_and_non_image_files_are_skipped_counted_and_listed(tmp_path: Path) -> None:
    metrics = _restructure(tmp_path, _corrupt_members())
    output = tmp_path / "work" / "interim" / "toy"
    assert metrics["images"] == 3  # a.jpg, b.jpg and the PNG data behind a .jpg name
    assert metrics["skipped"] == {
        "corrupt": 2,
        "not_image": 1,
        "unsupported": 0,
        "ignored_by_layout": 2,
        "unlabelled": 0,
        "duplicate_copy": 0,
    }
    assert metrics["extension_mismatch"] == 1
    with (output / "skipped.csv").open() as handle:
        skipped = {row["member"]: row["reason"] for row in csv.DictReader(handle)}
    assert skipped == {
        "root/train/cat/truncated.jpg": "corrupt",
        "root/train/cat/empty.jpg": "corrupt",
        "root/train/dog/text.jpg": "not_image",
    }
    assert files_under(output) == {
        "manifest.csv",
        "skipped.csv",
        "metadata.csv",  # a header alone: the toy archive has no label table
        "originals/manifest.csv",  # no rows: the toy archive ships no originals
        "train/cat/a.jpg",
        "train/dog/b.jpg",
        "train/dog/png-behind-jpg.jpg",
    }


def test_on_corrupt_fail_stops_and_leaves_no_output(tmp_path: Path) -> None:
    with pytest.raises(
        PipelineError, match=r"'root/train/cat/(truncated|empty).jpg' is corrupt .*restructure.on_corrupt"
    ):
        _restructure(tmp_path, _corrupt_members(), RestructureSettings(on_corrupt="fail"))
    _assert_nothing_written(tmp_path)


def test_a_failed_run_keeps_the_previous_complete_output(tmp_path: Path) -> None:
    """The output folder is replaced only at the end: a failing rerun leaves the earlier result intact."""
    _restructure(tmp_path, GOOD)
    output = tmp_path / "work" / "interim" / "toy"
    before = files_under(output)
    with pytest.raises(PipelineError):
        _restructure(tmp_path, {**GOOD, "root/train/cat/bad.jpg": b""}, RestructureSettings(on_corrupt="fail"))
    assert files_under(output) == before
    assert [path.name for path in output.parent.iterdir()] == ["toy"]


def test_invalid_params_name_the_key_and_the_file(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", {"restructure": {"on_corrupt": "ignore", "max_ratio": -3}})
    result = stage(project, "restructure", "chest_xray")
    assert result.returncode == 1
    assert "invalid params.yaml: restructure.on_corrupt: Input should be 'skip' or 'fail'" in result.stderr
    assert "restructure.max_ratio: Input should be greater than 1" in result.stderr
    assert not (project / "data").exists()


def test_invalid_registry_entries_name_the_key_and_the_file(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    entry = yaml.safe_load((project / "datasets" / "covid19.yaml").read_text())
    entry["kaggle"] = "tawsifurrahman/covid19-radiography-database"  # not pinned
    entry["group_regex"] = "no group"
    (project / "datasets" / "covid19.yaml").write_text(yaml.safe_dump(entry))
    result = stage(project, "fetch", "covid19")  # fetch validates the keys it reads; restructure reads group_regex
    assert result.returncode == 1
    handle = "'tawsifurrahman/covid19-radiography-database'"
    assert f"invalid datasets/covid19.yaml: kaggle: {handle} must be owner/slug/versions/N" in result.stderr
    assert "group_regex" not in result.stderr
    result = stage(project, "restructure", "covid19")
    assert result.returncode == 1
    assert "invalid datasets/covid19.yaml: group_regex: needs one capture group" in result.stderr
    entry["patient_id"] = entry.pop("group_regex")  # an entry written before the key's rename
    (project / "datasets" / "covid19.yaml").write_text(yaml.safe_dump(entry))
    result = stage(project, "restructure", "covid19")
    assert result.returncode == 1
    assert "invalid datasets/covid19.yaml: patient_id: renamed group_regex, same value" in result.stderr
