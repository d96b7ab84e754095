"""Map archive member paths to (source_split, label, file) with the registry's layout patterns.

Pattern syntax: `{split}`, `{label}` and `{file}` each match one path segment, `*` any part of one segment
(`HAM10000_images_part_*/{file}`), `**/` any number of folders; everything else is literal. Where labels come
from a table (registry key `labels`), patterns have no `{label}`.
Ignore rules: a rule without '/' matches the file name (`._*`, `.DS_Store`); a rule with '/' matches the
whole member path, `*` crossing folders (`chest_xray/chest_xray/*`, `*/masks/*`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from medimage.archives.reading import member_name, member_suffix
from medimage.manifest import Targets
from medimage.settings.restructure import RestructureEntry

NO_SPLIT = "all"
_PLACEHOLDER = re.compile(r"\{(split|label|file)\}")


def _literal(text: str) -> str:
    """A literal stretch of a pattern, with its wildcards: `**/` any folders, `*` part of one segment."""
    return "(?:[^/]+/)*".join("[^/]*".join(re.escape(piece) for piece in part.split("*")) for part in text.split("**/"))


def compile_pattern(pattern: str) -> re.Pattern[str]:
    parts = []
    position = 0
    for placeholder in _PLACEHOLDER.finditer(pattern):
        parts.append(_literal(pattern[position : placeholder.start()]))
        parts.append(f"(?P<{placeholder.group(1)}>[^/]+)")
        position = placeholder.end()
    parts.append(_literal(pattern[position:]))
    return re.compile("".join(parts))


def matching_rule(member: str, rules: Iterable[str]) -> str | None:
    """The first ignore rule that matches the member, if any."""
    name = member_name(member)
    for rule in rules:
        if fnmatch.fnmatchcase(member if "/" in rule else name, rule):
            return rule
    return None


@dataclass(frozen=True)
class Placement:
    source_split: str
    label: str  # "" for an original, and for every image of a multi-label set (its labels are `targets`)
    file: str
    group: str
    targets: Targets = ()

    @property
    def path(self) -> str:
        """<source_split>/<label>/<file>; <source_split>/<file> for a multi-label image, originals/<file> for an
        original (no label)."""
        return "/".join(part for part in (self.source_split, self.label, self.file) if part)


@dataclass(frozen=True)
class Layout:
    """The registry's layout rules for one dataset, compiled once."""

    spec: RestructureEntry

    @cached_property
    def _patterns(self) -> list[re.Pattern[str]]:
        return [compile_pattern(pattern) for pattern in self.spec.layout]

    @cached_property
    def _sources(self) -> re.Pattern[str] | None:
        return compile_pattern(self.spec.sources) if self.spec.sources else None

    @cached_property
    def _group_regex(self) -> re.Pattern[str] | None:
        return re.compile(self.spec.group_regex) if self.spec.group_regex else None

    @cached_property
    def extensions(self) -> frozenset[str]:
        return frozenset(extension.lower() for extension in self.spec.extensions)

    def ignore_rule(self, member: str) -> str | None:
        """The first ignore rule that matches the member, if any."""
        return matching_rule(member, self.spec.ignore)

    def place(self, member: str) -> Placement | None:
        """Where the member goes, or None when no layout pattern (or no allowed extension) matches it."""
        for pattern in self._patterns:
            match = pattern.fullmatch(member)
            if match:
                break
        else:
            return None
        file = match["file"]
        if member_suffix(file) not in self.extensions:
            return None
        return Placement(
            source_split=self.canonical_split(match.groupdict().get("split")),
            label=match.groupdict().get("label") or "",  # from the label table, where the registry names one
            file=file,
            group=self.group_of(file),
        )

    def original(self, member: str) -> str | None:
        """The file name of an original the class images were made from (registry key `sources`), else None."""
        match = self._sources.fullmatch(member) if self._sources else None
        if match is None or member_suffix(match["file"]) not in self.extensions:
            return None
        return match["file"]

    def canonical_split(self, archive_split: str | None) -> str:
        if archive_split is None:
            return NO_SPLIT
        return self.spec.split_map.get(archive_split, archive_split).lower()

    def group_of(self, file: str) -> str:
        if self._group_regex is None:
            return ""
        match = self._group_regex.search(file)
        return match.group(1) if match else ""


def top_level_entries(members: list[str], limit: int = 12) -> str:
    """A short listing of an archive's top-level folders and files, for error messages."""
    entries = sorted({member.split("/", 1)[0] + ("/" if "/" in member else "") for member in members})
    shown = ", ".join(entries[:limit])
    return shown + (f", ... ({len(entries)} in all)" if len(entries) > limit else "") if entries else "(empty archive)"
