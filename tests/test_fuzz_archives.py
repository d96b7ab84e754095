"""Reliability, part 3: hypothesis-generated archives through restructure.

Every archive either restructures into a manifest that matches the files written, or is refused with a
one-line PipelineError; no other exception, no file outside the output folder, nothing left behind on
refusal, bounded time per case. CI runs FUZZ_EXAMPLES (default 150) cases; `make fuzz` runs 3,000.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tempfile
import uuid
import warnings
import zipfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from harness.project import file_digest
from medimage import manifest
from medimage.archives.unpacking import restructure
from medimage.errors import PipelineError
from medimage.settings.restructure import RestructureSettings
from tests.samples import TOY, jpeg_bytes, png_bytes

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
# Out of the temporary root: a member escaping to it would be caught, and nothing real is at risk.
ESCAPE_TARGET = f"/tmp/fuzz-escape-{uuid.uuid4().hex}.jpg"
QUOTED = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\[.*\]"
LIMITS = RestructureSettings(max_member_mb=1, max_total_gb=0.01, max_ratio=100, max_members=40)

segments = st.one_of(
    st.sampled_from(
        ["root", "train", "test", "cat", "dog", "..", ".", "", "__MACOSX", "._a.jpg", "a.jpg", "b.png", "x.jpg/"]
    ),
    st.text(min_size=1, max_size=12),  # unicode, controls, separators
    st.text(alphabet="ab", min_size=256, max_size=300),  # past the 255-byte name limit
)
layout_names = st.builds(
    lambda split, label, number, file: f"root/{split}/{label}/{number}{file}",
    st.sampled_from(["train", "test", "val"]),
    st.sampled_from(["cat", "dog", "ünïcødé", "with space"]),
    st.integers(0, 99),
    st.sampled_from(["a.jpg", "b.JPG", "c.png", "d.jpeg", "e.txt", "f.jpg", "名前.png"]),
)
hostile_names = st.one_of(
    st.lists(segments, min_size=1, max_size=6).map("/".join),
    st.lists(segments, min_size=1, max_size=4).map("\\".join),
    st.sampled_from(
        [
            "../escape.jpg",
            "root/train/cat/../../../x.jpg",
            ESCAPE_TARGET,
            "C:/x.jpg",
            "C:\\x.jpg",
            "..\\..\\x.jpg",
            "root/train/cat/",
        ]
    ),
)
good_images = st.sampled_from([jpeg_bytes(), jpeg_bytes(value=40, channels=3), png_bytes()])
contents = st.one_of(
    *[good_images] * 6,
    good_images.flatmap(lambda data: st.integers(0, len(data) - 1).map(lambda cut: data[:cut])),  # truncated
    st.binary(max_size=300),  # random bytes behind an image extension
)
ZEROS = bytes(2 * 1024 * 1024)  # past the 1 MB member limit, and a 1000x ratio when deflated


def rarely(strategy: st.SearchStrategy, one_in: int) -> st.SearchStrategy:
    """`strategy`'s value one time in `one_in`, else None."""
    return st.integers(0, one_in - 1).flatmap(lambda n: strategy if n == 0 else st.none())


@st.composite
def archives(draw: st.DrawFn) -> bytes:
    """Mostly well-laid-out archives with damaged contents, each with a chance of one hostile trait."""
    entries = draw(st.lists(st.tuples(layout_names, contents), max_size=12))
    hostile = draw(rarely(st.tuples(hostile_names, contents), 2))
    if hostile:
        entries.insert(draw(st.integers(0, len(entries))), hostile)
    if draw(rarely(st.just(True), 8)):
        entries.append(("root/train/dog/zeros.jpg", ZEROS))
    if draw(rarely(st.just(True), 8)):  # a second member of the same name
        entries += [("root/train/cat/twice.jpg", jpeg_bytes()), ("root/train/cat/twice.jpg", jpeg_bytes(value=9))]
    symlink = draw(rarely(st.integers(0, max(len(entries) - 1, 0)), 12))
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as handle:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we generate on purpose
        for position, (name, data) in enumerate(entries):
            info = zipfile.ZipInfo(name)
            info.compress_type = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
            if position == symlink:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            handle.writestr(info, data)
    data = buffer.getvalue()
    cut = draw(rarely(st.integers(0, len(data)), 8))  # a truncated download
    return data if cut is None else data[:cut]


def all_files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file() or path.is_symlink()}


def check_manifest(destination: Path, metrics: dict) -> None:
    rows = manifest.read_interim(destination)
    written = {path.relative_to(destination).as_posix() for path in all_files(destination)} - {
        "manifest.csv",
        "skipped.csv",
        "metadata.csv",
        "originals/manifest.csv",
    }
    assert {row.path for row in rows} == written
    assert manifest.read_originals(destination) == []  # the toy registry entry names no sources
    assert metrics["images"] == len(rows) > 0
    for row in rows:
        assert file_digest(destination / row.path) == row.sha256


@settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=20),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(archives())
def test_restructure_survives_any_archive(data: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as root_name:
        root = Path(root_name)
        archive = root / "toy.zip"
        archive.write_bytes(data)
        destination = root / "deep" / "down" / "under" / "interim" / "toy"
        try:
            metrics = restructure(archive, TOY, LIMITS, destination)
        except PipelineError as error:
            message = str(error)
            assert message and "\n" not in message and "\r" not in message, repr(message)
            assert all_files(root) == {archive}, "a refused archive left files behind"
            event(f"refused: {re.sub(r'[0-9]+|' + QUOTED, '_', message.replace(root_name, '<tmp>'))[:70]}")
        else:
            check_manifest(destination, metrics)
            assert all_files(root) - {archive} <= all_files(destination), "files were written outside the output folder"
            event("restructured")
    assert not Path(ESCAPE_TARGET).exists()
