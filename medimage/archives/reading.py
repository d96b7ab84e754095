"""Read a zip archive member by member, refusing anything that could write outside the output folder or blow up.

Every member is checked before a single byte is written: unsafe paths (absolute, `..`, drive letters),
symlink entries, encrypted members, duplicate names and sizes or ratios past the limits. While reading, a
member that inflates past its declared size (a lying header) is stopped at the limit.
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from medimage.errors import PipelineError
from medimage.settings.restructure import RestructureSettings

MB = 1024 * 1024
# Small members cannot be bombs whatever their ratio (AppleDouble stubs and blank masks compress 100x).
RATIO_CHECK_FROM_BYTES = 1 * MB
MAX_SEGMENT_BYTES = 255


@dataclass(frozen=True)
class Limits:
    max_member_bytes: int
    max_total_bytes: int
    max_ratio: float
    max_members: int

    @classmethod
    def from_settings(cls, settings: RestructureSettings) -> Limits:
        return cls(
            max_member_bytes=int(settings.max_member_mb * MB),
            max_total_bytes=int(settings.max_total_gb * 1024 * MB),
            max_ratio=settings.max_ratio,
            max_members=settings.max_members,
        )


def member_name(member: str) -> str:
    """The file name of a member path (string operations: pathlib costs seconds per 100,000 members)."""
    return member.rpartition("/")[2]


def _split_extension(member: str) -> tuple[str, str]:
    """(stem, extension) of a member's file name, as posixpath.splitext (leading dots are not an extension)."""
    name = member_name(member)
    dot = name.rfind(".")
    if dot <= len(name) - len(name.lstrip(".")) - 1:
        return name, ""
    return name[:dot], name[dot:]


def member_suffix(member: str) -> str:
    """The lower-cased extension of a member's file name ('' for none)."""
    return _split_extension(member)[1].lower()


def member_stem(member: str) -> str:
    return _split_extension(member)[0]


class CorruptMember(Exception):
    """A member whose compressed data is damaged (bad CRC, bad deflate stream)."""


def open_zip(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise PipelineError(f"archive {path} not found")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise PipelineError(f"{path} is not a readable zip archive ({error})") from None
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error}") from None


def safe_member_name(raw: str) -> str:
    """The member's path with '/' separators, or PipelineError if it could escape the output folder."""
    name = raw.replace("\\", "/")
    segments = [segment for segment in name.split("/") if segment not in ("", ".")]
    escapes = name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in segments or "\x00" in name
    if escapes:
        raise PipelineError(
            f"unsafe member path {raw!r} in the archive (it would escape the output folder); refusing the archive"
        )
    too_long = [segment for segment in segments if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES]
    if too_long:
        raise PipelineError(f"member path {raw[:80]!r}... has a name longer than {MAX_SEGMENT_BYTES} bytes")
    return "/".join(segments) + ("/" if name.endswith("/") else "")


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def checked_members(archive: zipfile.ZipFile, limits: Limits) -> list[tuple[str, zipfile.ZipInfo]]:
    """(safe name, info) of every file member, after checking the whole archive against the limits."""
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise PipelineError(
            f"archive has {len(infos):,} members, over the limit of {limits.max_members:,} (restructure.max_members)"
        )
    members: list[tuple[str, zipfile.ZipInfo]] = []
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = safe_member_name(info.filename)
        if _is_symlink(info):
            raise PipelineError(f"member {info.filename!r} is a symbolic link; refusing the archive")
        if info.flag_bits & 0x1:
            raise PipelineError(
                f"member {info.filename!r} is encrypted; unpack it yourself and use fetch.source=path on the folder"
            )
        if name.endswith("/") or not name:
            continue
        if name in seen:
            raise PipelineError(f"member {name!r} occurs twice in the archive; refusing to guess which copy is meant")
        seen.add(name)
        if info.file_size > limits.max_member_bytes:
            raise PipelineError(
                f"member {name!r} declares {info.file_size / MB:,.1f} MB, over the limit of "
                f"{limits.max_member_bytes / MB:,.0f} MB (restructure.max_member_mb); refusing a possible zip bomb"
            )
        if info.file_size >= RATIO_CHECK_FROM_BYTES and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise PipelineError(
                f"member {name!r} expands {info.file_size / max(info.compress_size, 1):,.0f}x, over the limit of "
                f"{limits.max_ratio:g}x (restructure.max_ratio); refusing a possible zip bomb"
            )
        total += info.file_size
        if total > limits.max_total_bytes:
            raise PipelineError(
                f"archive expands past {limits.max_total_bytes / MB / 1024:,.1f} GB (restructure.max_total_gb); "
                "refusing a possible zip bomb"
            )
        members.append((name, info))
    return members


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits) -> bytes:
    """The member's bytes, never more than its declared size (or the member limit) even if the data lies."""
    allowed = min(info.file_size, limits.max_member_bytes)
    try:
        with archive.open(info) as stream:
            data = stream.read(allowed + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise CorruptMember(str(error)) from None
    except NotImplementedError as error:
        raise PipelineError(f"member {info.filename!r}: {error}") from None
    if len(data) > allowed:
        raise PipelineError(
            f"member {info.filename!r} inflates past its declared {info.file_size:,} bytes; "
            "refusing a possible zip bomb"
        )
    return data
