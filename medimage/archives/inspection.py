"""Work out a registry entry from what an archive holds: its member list and its small tables, nothing extracted.

Used by `python -m stages.add`. Every decision keeps its evidence (counts, the columns and folders it saw), so
that the written YAML can say why; where two readings are equally plausible it stops with the candidates and the
option that names one (`Ambiguous`), never picking one silently.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from os.path import commonprefix
from pathlib import Path

from medimage.archives.dicom import DICOM_SUFFIXES
from medimage.archives.layout import matching_rule
from medimage.archives.reading import (
    Limits,
    checked_members,
    member_name,
    member_stem,
    member_suffix,
    open_zip,
    read_member,
)
from medimage.archives.tables import (
    MULTI_LABEL_SEPARATORS,
    Table,
    decode_text,
    id_key,
    image_key,
    multi_label_cells,
    parse_table,
    value_counts,
)
from medimage.archives.validation import IMAGE_SUFFIXES
from medimage.errors import PipelineError

TABLE_MAX_BYTES = 64 * 1024 * 1024  # larger "tables" are pixel dumps or logs, not label tables
SAMPLE_ROWS = 500  # rows read to judge a table; only the chosen label table is read whole
ID_MATCH_SHARE = 0.9  # of a column's sampled cells that must name an image for it to be an id column
MAX_LABELS = 200
NONE_WORDS = {"no", "none", "normal", "nothing"}  # with one more word at most: No Finding, normal fundus
POSITIVE_CODES = {"1", "1.0"}
UNCERTAIN_CODES = {"-1", "-1.0"}  # CheXpert
MULTI_LABEL_SHARE = 0.1  # of labelled rows giving several labels: a multi-label set, where nothing else says so
LABEL_CODES = POSITIVE_CODES | UNCERTAIN_CODES | {"0", "0.0", ""}
LABEL_FLAG_SHARE = 0.5  # of rows setting at least one flag column, for flags to be labels rather than attributes
SPLIT_WORDS = {"train": "train", "training": "train", "test": "test", "testing": "test", "val": "val"}
SPLIT_WORDS |= {"valid": "val", "validation": "val", "dev": "val", "holdout": "test", "eval": "test"}
SPLIT_WORDS |= {"trainval": "train"}  # train and val together (NIH's train_val_list): our train, val carved out
LABEL_WORDS = {"label", "labels", "class", "classes", "diagnosis", "dx", "finding", "findings", "target", "category"}
GROUP_WORDS = ("patient", "lesion", "subject", "participant", "study")  # in order of preference
GROUP_MIN_SHARE = 0.05  # distinct ids per sampled row, at least: a sex or a site repeats far more than a patient
SPLIT_COLUMN_WORDS = {"split", "fold", "subset", "partition", "set"}
# columns describing the patient or the acquisition: carried into metadata.csv for the report's subgroups
METADATA_WORDS = {"sex", "gender", "age", "site", "localization", "location", "view", "position", "scanner"}
MASK_FOLDERS = re.compile(r"(?i)^(masks?|segmentations?|.*_masks?)$")
PATIENT_WORDS = re.compile(r"(?i)(patient|person|subject|case|pid)([-_ ]?)(\d+)([-_ .])")
JUNK_NAMES = ("._*", ".DS_Store", "Thumbs.db", "desktop.ini")


class Ambiguous(PipelineError):
    """Two or more readings fit the archive equally well: the message lists them and the option to choose."""


@dataclass(frozen=True)
class Member:
    """What a listing knows of a file without reading it (zipfile.ZipInfo's names, so the two are interchangeable)."""

    filename: str
    file_size: int
    CRC: int | None  # None for a file in a folder: not read


@dataclass
class Listing:
    """An archive or folder: every file member, and a bounded reader for the few that are read (tables)."""

    members: dict[str, Member | zipfile.ZipInfo]
    read: Callable[[str], bytes]
    kind: str  # "archive" or "folder"


def list_archive(path: Path, limits: Limits) -> Listing:
    """The members of a zip, after the safety checks restructure makes (unsafe paths, bombs, encryption)."""
    archive = open_zip(path)
    members = dict(checked_members(archive, limits))
    return Listing(members, lambda member: read_member(archive, members[member], limits), "archive")


def list_folder(folder: Path, limits: Limits) -> Listing:
    files = sorted(path for path in folder.rglob("*") if path.is_file() and not path.is_symlink())
    if not files:
        raise PipelineError(f"{folder} holds no files")
    if len(files) > limits.max_members:
        raise PipelineError(
            f"{folder} holds {len(files):,} files, over restructure.max_members ({limits.max_members:,})"
        )
    members = {
        path.relative_to(folder).as_posix(): Member(path.relative_to(folder).as_posix(), path.stat().st_size, None)
        for path in files
    }

    def read(member: str) -> bytes:
        if members[member].file_size > limits.max_member_bytes:
            raise PipelineError(f"{member} is larger than restructure.max_member_mb")
        return (folder / member).read_bytes()

    return Listing(members, read, "folder")


# --------------------------------------------------------------------------- what to ignore


@dataclass(frozen=True)
class Rule:
    pattern: str  # an ignore rule in the registry's syntax (medimage/archives/layout.py)
    reason: str  # the comment written beside it
    count: int


def segment_rules(names: Iterable[str], folder: re.Pattern[str], reason: str) -> list[Rule]:
    """`<segment>/*` for a matching top folder, `*/<segment>/*` for one deeper."""
    found: Counter[str] = Counter()
    for name in names:
        parts = name.split("/")[:-1]
        for depth, part in enumerate(parts):
            if folder.match(part):
                found[f"{rule_literal(part)}/*" if depth == 0 else f"*/{rule_literal(part)}/*"] += 1
                break
    return [Rule(pattern, reason, count) for pattern, count in sorted(found.items())]


def junk_rules(names: list[str]) -> list[Rule]:
    """macOS and Windows litter: AppleDouble trees and files, Finder and Explorer metadata."""
    rules = segment_rules(names, re.compile(r"^__MACOSX$"), "macOS resource forks, not images")
    for pattern in JUNK_NAMES:
        count = sum(matching_rule(name, [pattern]) is not None for name in names)
        if count:
            rules.append(Rule(pattern, "operating system litter", count))
    return rules


def is_ignored(name: str, rules: list[Rule]) -> bool:
    return matching_rule(name, [rule.pattern for rule in rules]) is not None


def duplicate_trees(members: dict[str, Member | zipfile.ZipInfo], ignored: list[Rule]) -> list[Rule]:
    """Folders that repeat another folder file for file (same relative names up to letter case, sizes and CRCs),
    each as one ignore rule: HAM10000's `ham10000_images_part_1/`, chest X-ray's nested `chest_xray/chest_xray/`.

    The copy kept is the shallowest, then the first by name; a folder whose files all lie in copies is one rule.
    """
    signature: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for name, info in members.items():
        if is_ignored(name, ignored):
            continue
        parts = name.split("/")
        for depth in range(1, len(parts)):
            folder, below = "/".join(parts[:depth]), "/".join(parts[depth:]).lower()
            count, total = signature[folder]
            signature[folder] = (count + 1, (total + hash((below, info.file_size, info.CRC))) % (1 << 64))
    by_signature: dict[tuple[int, int], list[str]] = defaultdict(list)
    for folder, key in signature.items():
        by_signature[key].append(folder)
    copies: dict[str, str] = {}
    for folders in by_signature.values():
        if len(folders) > 1:
            kept, *others = sorted(folders, key=lambda folder: (folder.count("/"), folder))
            copies.update({other: kept for other in others})
    copies = {folder: kept for folder, kept in copies.items() if not any(_below(folder, other) for other in copies)}
    copies = _whole_parents(copies, members, ignored)
    return [
        Rule(
            f"{rule_literal(folder)}/*",
            f"a second copy of {kept}/ (same file names, sizes and CRCs)",
            signature[folder][0],
        )
        for folder, kept in sorted(copies.items())
    ]


def _below(folder: str, ancestor: str) -> bool:
    return folder != ancestor and folder.startswith(ancestor + "/")


def _whole_parents(
    copies: dict[str, str], members: dict[str, Member | zipfile.ZipInfo], ignored: list[Rule]
) -> dict[str, str]:
    """Replace copied folders by their parent where everything in the parent is copied (chest_xray/chest_xray)."""
    while True:
        parents = {folder.rpartition("/")[0] for folder in copies if "/" in folder}
        merged = False
        for parent in sorted(parents):
            inside = [name for name in members if name.startswith(parent + "/") and not is_ignored(name, ignored)]
            kept = {copies[folder].rpartition("/")[0] for folder in copies if folder.startswith(parent + "/")}
            all_copied = all(any(name.startswith(folder + "/") for folder in copies) for name in inside)
            if all_copied and len(kept) == 1 and not any(_below(k, parent) or k == parent for k in kept):
                copies = {f: k for f, k in copies.items() if not f.startswith(parent + "/")} | {parent: kept.pop()}
                merged = True
        if not merged:
            return copies


# --------------------------------------------------------------------------- splits and folders


def split_name(value: str, taken: Iterable[str] = ()) -> str | None:
    """Our name for an archive split (Training -> train, train_images -> train), or None if it is not one."""
    lower = value.lower()
    if lower in SPLIT_WORDS:
        return SPLIT_WORDS[lower]
    words = [SPLIT_WORDS[token] for token in re.split(r"[^a-z]+", lower) if token in SPLIT_WORDS]
    if not words:
        return None
    if set(words) == {"train", "val"}:
        words = ["train"]  # train_val: the archive's train and val together
    return words[0] if words[0] not in taken and len(set(words)) == 1 else lower


def split_map(values: Iterable[str]) -> dict[str, str]:
    """Archive split -> our name; a value whose short name another value already has keeps its own (TEST_SIMPLE)."""
    ordered = sorted(set(values), key=lambda value: (split_name(value) != value.lower(), len(value), value))
    mapping: dict[str, str] = {}
    for value in ordered:
        mapping[value] = split_name(value, mapping.values()) or value.lower()
    return dict(sorted(mapping.items()))


@dataclass
class FolderShape:
    """The folders of the images at one depth: which segment is the split, which the label, which are literal."""

    depth: int
    images: int
    values: list[Counter[str]]  # per folder position: value -> images
    split_position: int | None = None
    label_position: int | None = None
    ambiguous: list[int] = field(default_factory=list)  # several positions could be the label

    def pattern(self, with_label: bool) -> str:
        parts = []
        for position, counts in enumerate(self.values):
            if position == self.split_position:
                parts.append("{split}")
            elif position == self.label_position and with_label:
                parts.append("{label}")
            else:
                parts.append(_generalise(list(counts)))
        return "/".join([*parts, "{file}"])


def _generalise(values: list[str]) -> str:
    """One folder value as is, or several as their common prefix and suffix around `*` (images_001 ... -> images_*).
    Pattern syntax in a name (a folder called `{label}`, `a*b`) becomes `*`: it still matches only that folder."""
    if len(values) == 1:
        return _pattern_literal(values[0])
    prefix = commonprefix(values)
    suffix = commonprefix([value[len(prefix) :][::-1] for value in values])[::-1]
    return f"{_pattern_literal(prefix)}*{_pattern_literal(suffix)}"


def _pattern_literal(text: str) -> str:
    return re.sub(r"[{}*]+", "*", text)


def rule_literal(text: str) -> str:
    """A folder name inside an ignore rule (fnmatch): `*`, `?` and `[` matched as themselves."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def folder_shapes(images: list[str]) -> list[FolderShape]:
    by_depth: dict[int, list[list[str]]] = defaultdict(list)
    for image in images:
        by_depth[image.count("/")].append(image.split("/")[:-1])
    shapes = []
    for depth, folders in sorted(by_depth.items()):
        values = [Counter(folder[position] for folder in folders) for position in range(depth)]
        shape = FolderShape(depth, len(folders), values)
        varying = [position for position, counts in enumerate(values) if len(counts) > 1]
        splits = [position for position in varying if all(split_name(value) for value in values[position])]
        labels = [p for p in varying if p not in splits and _label_like(values[p], len(folders))]
        shape.split_position = splits[0] if len(splits) == 1 else None
        if len(labels) == 1:
            shape.label_position = labels[0]
        shape.ambiguous = labels if len(labels) > 1 else []
        shapes.append(shape)
    return shapes


def _label_like(counts: Counter[str], images: int) -> bool:
    """A few folders with several images each (not one folder per patient or per image)."""
    return 2 <= len(counts) <= MAX_LABELS and len(counts) * 2 <= images


def patient_pattern(files: list[str]) -> tuple[str, int, int] | None:
    """A patient id rule for file names like `person1234_bacteria_5.jpeg`: (regex, files, patients), where ids
    recur (several images per patient on average); None where the names carry none."""
    found: Counter[tuple[str, str, str]] = Counter()
    ids: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for file in files:
        match = PATIENT_WORDS.search(member_name(file))
        if match:
            rule = (match.group(1), match.group(2), match.group(4))
            found[rule] += 1
            ids[rule].add(match.group(3))
    if not found:
        return None
    rule, count = found.most_common(1)[0]
    if count < 1.2 * len(ids[rule]):
        return None
    word, joint, separator = rule
    return f"{re.escape(word)}{re.escape(joint)}(\\d+){re.escape(separator)}", count, len(ids[rule])


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class TableOptions:
    """What the user named on `add`'s command line about the label table."""

    label_column: str | None = None
    group_column: str | None = None
    encoding: str = "utf-8"
    multi_label: bool = False  # read several labels per image even where few rows give several


@dataclass
class TableReading:
    """What one table is, as far as labelling the images goes."""

    member: str
    rows: Table
    id_column: str | None = None
    label_column: str | None = None
    one_hot: list[str] = field(default_factory=list)
    group_column: str | None = None
    split_column: str | None = None
    metadata: list[str] = field(default_factory=list)  # columns for subgroups: sex, age, site, ...
    per_image: dict[str, str] = field(default_factory=dict)  # rows naming several images: id column -> its label
    localisation: bool = False  # boxes, several rows per image: a label table only where no other is
    multi_label: dict | None = None  # several labels per image: the registry's labels.multi_label
    class_columns: list[str] = field(default_factory=list)  # a row's classes its images' keywords map to (ODIR's N..O)
    rejected: str | None = None  # why it is not a label table
    refusal: str | None = None  # why it labels the images in a way not supported: add stops, naming it


def _words(column: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", column.lower())) - {""}


def _id_columns(rows: Table, keys: set[str], names: set[str]) -> list[str]:
    """The columns whose cells name images, most matches first."""
    found: list[tuple[int, str]] = []
    for column in rows[0] if rows else []:
        cells = [row.get(column, "") for row in rows if row.get(column, "")]
        matches = sum(id_key(cell, IMAGE_SUFFIXES) in keys or cell in names for cell in cells)
        if cells and matches >= ID_MATCH_SHARE * len(cells):
            found.append((-matches, column))
    return [column for _, column in sorted(found, key=lambda item: item[0])]


def _coded_columns(rows: Table, columns: list[str]) -> list[str]:
    """Columns holding only label codes: 1 and 0 (1.0, 0.0), CheXpert's -1 for uncertain, blank for unmentioned."""
    coded = []
    for column in columns:
        values = {row.get(column, "") for row in rows}
        if values <= LABEL_CODES and values & (POSITIVE_CODES | UNCERTAIN_CODES):
            coded.append(column)
    return coded


def _label_flags(reading: TableReading, rows: Table, columns: list[str], forced: bool) -> None:
    """Label columns of 1/0 codes: one-hot (exactly one set per row), or multi-hot where rows set several or code
    some uncertain (CheXpert's -1): a multi-label set, uncertain cells unknown, blank ones negative; a column named
    for no finding (`No Finding`) is the absence of every label, not one of them.

    Flag columns that most rows leave unset are attributes (RSNA's biopsy, implant, invasive), not labels."""
    coded = _coded_columns(rows, columns)
    set_per_row = [sum(row.get(column, "") in POSITIVE_CODES for column in coded) for row in rows]
    if len(coded) < 2 or sum(count > 0 for count in set_per_row) < LABEL_FLAG_SHARE * len(rows):
        return
    reading.one_hot = coded
    several = sum(count > 1 for count in set_per_row)
    uncertain = sum(row.get(column, "") in UNCERTAIN_CODES for row in rows for column in coded)
    if several or uncertain or forced:
        found = {
            "none": [column for column in coded if _means_none(column)],
            "uncertain": "ignore",
            "blank": "negative",
        }
        evidence = Several(f"columns {', '.join(coded)}", several, sum(map(bool, set_per_row)), bool(uncertain))
        _multi_label_or_refusal(reading, found, evidence, forced)


@dataclass(frozen=True)
class Several:
    """How a table's rows give several labels, for telling a multi-label set from a single-label one's slips."""

    how: str  # the columns or cells that give them
    rows: int  # rows giving several labels
    labelled: int  # rows giving any
    uncertain: bool  # some cells coded uncertain (CheXpert's -1): only multi-label sets have them


def _multi_label_or_refusal(reading: TableReading, found: dict, several: Several, forced: bool) -> None:
    """A multi-label set shows it: uncertain codes, or at least MULTI_LABEL_SHARE of its rows giving several labels
    (NIH: 18%). A few rows giving several are slips of a single-label set (blood cells' `NEUTROPHIL, EOSINOPHIL`):
    refused, with their count, unless `add --multi-label` says otherwise."""
    if forced or several.uncertain or several.rows >= MULTI_LABEL_SHARE * several.labelled:
        reading.multi_label = found
        return
    reading.refusal = (
        f"{several.how} give several labels to {several.rows:,} of the {several.labelled:,} labelled rows read: too "
        f"few for a multi-label set (under {MULTI_LABEL_SHARE:.0%}, no uncertain codes); "
        "correct those rows or ignore their images, or pass --multi-label to read every label of every image"
    )


def _means_none(value: str) -> bool:
    """`No Finding`, `none`, `Normal`: a value or column that says the image has no label at all."""
    words = _words(value)
    return bool(words & NONE_WORDS) and len(words) <= 2


def _joined_labels(reading: TableReading, cells: list[str], forced: bool) -> None:
    """labels.multi_label for label cells that join several labels (NIH's `Effusion|Mass`), the separator being the
    one whose parts the cells also hold alone; nothing where no cell joins labels."""
    several = multi_label_cells([{"cell": cell} for cell in cells], "cell")
    cells = [cell for cell in cells if cell]
    if not several:
        return
    alone = {cell for cell in cells if not any(separator in cell for separator in MULTI_LABEL_SEPARATORS)}

    def joins(separator: str) -> int:
        return sum(separator in cell and all(p.strip() in alone for p in cell.split(separator)) for cell in cells)

    separator = max(MULTI_LABEL_SEPARATORS, key=lambda candidate: (joins(candidate), candidate == "|"))
    if not joins(separator):  # nothing joined of values seen alone: `|` and the full-width comma all the same
        separator = next(s for s in MULTI_LABEL_SEPARATORS if any(s in cell for cell in cells))
    # joined to a label, a value for none adds nothing to it (ODIR's `normal fundus，lens dust`)
    parts = {part.strip() for cell in cells for part in cell.split(separator)}
    none = sorted(value for value in parts if _means_none(value))
    found = {"separator": separator, "none": none, "uncertain": "ignore", "blank": "negative"}
    _multi_label_or_refusal(reading, found, Several("label cells", several, len(cells), False), forced)


def coarsest(readings: list[TableReading]) -> TableReading | None:
    """Of tables labelling the same images, the one every other refines (RSNA Pneumonia's `Target`, which its
    `class` table splits: No Lung Opacity / Not Normal and Normal are both Target 0): each other table's label
    determines this one's on the images both name, and it has fewer labels. None where no table is so."""

    def labels(reading: TableReading) -> dict[str, str]:
        column, key = reading.label_column or "", reading.id_column or ""
        return {row.get(key, ""): row.get(column, "") for row in reading.rows}

    def refines(finer: TableReading, coarse: TableReading) -> bool:
        fine_labels, coarse_labels = labels(finer), labels(coarse)
        shared = set(fine_labels) & set(coarse_labels)
        mapping: dict[str, set[str]] = defaultdict(set)
        for key in shared:
            mapping[fine_labels[key]].add(coarse_labels[key])
        fewer = len({coarse_labels[key] for key in shared}) < len({fine_labels[key] for key in shared})
        return bool(shared) and fewer and all(len(found) == 1 for found in mapping.values())

    single = [reading for reading in readings if reading.label_column]
    if len(single) < len(readings):
        return None
    found = [r for r in single if all(refines(other, r) for other in single if other is not r)]
    return found[0] if len(found) == 1 else None


def _one_per_image(rows: Table, id_column: str, column: str) -> bool:
    """Every image's rows hold one value of `column`."""
    values: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        values[row.get(id_column, "")].add(row.get(column, ""))
    return all(len(found) == 1 for found in values.values())


def _localisation(columns: list[str], rows: Table, id_column: str) -> bool:
    """A table of boxes (x, y, width, height; NIH's `Bbox [x`): several rows per image, no per-image labels."""
    words = set().union(*(_words(column) for column in columns))
    boxes = "bbox" in words or {"x", "y"} <= words and ({"w", "h"} <= words or {"width", "height"} <= words)
    return boxes and len(value_counts(rows, id_column)) < len(rows)


def _low_cardinality(rows: Table, column: str) -> bool:
    distinct = len(value_counts(rows, column))
    return 2 <= distinct <= MAX_LABELS and distinct < len(rows)


def read_table(member: str, listing: Listing, keys: set[str], names: set[str], options: TableOptions) -> TableReading:
    """Judge one table from a sample of its rows: its id column, then its label and group columns."""
    size = listing.members[member].file_size
    if size > TABLE_MAX_BYTES:
        return TableReading(member, [], rejected=f"{size / 2**20:,.0f} MB: too large for a label table")
    try:
        rows = parse_table(member, listing.read(member), SAMPLE_ROWS, options.encoding)
    except (PipelineError, UnicodeDecodeError, ValueError) as error:
        return TableReading(member, [], rejected=f"not a readable table ({error})")
    reading = TableReading(member, rows)
    if not rows:
        reading.rejected = "no rows"
        return reading
    image_columns = _id_columns(rows, keys, names)
    if not image_columns:
        reading.rejected = "no column names the images (e.g. a table of pixels or of boxes)"
        return reading
    if len(image_columns) > 1:
        _rows_of_several_images(reading, rows, image_columns, options)
        return reading
    reading.id_column = image_columns[0]
    columns = [column for column in rows[0] if column != reading.id_column]
    reading.localisation = _localisation(columns, rows, reading.id_column)
    label_column, group_column = options.label_column, options.group_column
    for named, what in ((label_column, "--label-column"), (group_column, "--group-column")):
        if named is not None and named not in columns:
            reading.rejected = f"no column {named!r} ({what}); its columns: {columns}"
            return reading
    reading.group_column = group_column or _group_column(columns, rows)
    reading.split_column = next(
        (c for c in columns if _words(c) & SPLIT_COLUMN_WORDS and all(split_name(v) for v in value_counts(rows, c))),
        None,
    )
    others = [column for column in columns if column not in (reading.group_column, reading.split_column)]
    if label_column is not None:
        reading.label_column = label_column
    else:
        _label_flags(reading, rows, others, options.multi_label)
        if not reading.one_hot:
            _choose_label(reading, rows, others)
    if reading.label_column:
        _joined_labels(reading, [row.get(reading.label_column, "") for row in rows], options.multi_label)
    if reading.localisation and reading.label_column and _one_per_image(rows, reading.id_column, reading.label_column):
        reading.localisation = False  # boxes with the image's label on every row (RSNA's Target): a label table
    used = {reading.label_column, reading.group_column, reading.split_column, *reading.one_hot}
    reading.metadata = [column for column in others if _words(column) & METADATA_WORDS and column not in used]
    if reading.label_column and len(value_counts(rows, reading.label_column)) < 2:
        values = ", ".join(sorted(value_counts(rows, reading.label_column)))
        reading.rejected = f"column {reading.label_column!r} holds one value ({values}) for every row: not labels"
    if "submission" in member_name(member).lower():
        reading.rejected = "a submission template, not labels"
    return reading


def _rows_of_several_images(
    reading: TableReading, rows: Table, image_columns: list[str], options: TableOptions
) -> None:
    """A row that names several images (ODIR's Left-Fundus, Right-Fundus): each image takes its label from its own
    column, the one named with the word that tells the images apart (Left-Diagnostic Keywords), never from the
    row's columns (N, D, G, ...: the patient's); the row's id is the group of all its images. A refusal where an
    image has no column of its own or the row no id."""
    columns = [column for column in rows[0] if column not in image_columns]
    own: dict[str, str] = {}
    for image_column in image_columns:
        distinct = _words(image_column) - set().union(*(_words(c) for c in image_columns if c != image_column))
        found = [column for column in columns if _words(column) & distinct]
        if len(found) == 1:
            own[image_column] = found[0]
    row_ids = [column for column in columns if "id" in _words(column) and len(value_counts(rows, column)) == len(rows)]
    group = options.group_column or (row_ids[0] if row_ids else None)
    missing = "" if group else "no column holds an id per row (to keep its images together)"
    missing = "not every image has a label column of its own" if len(own) < len(image_columns) else missing
    if missing:
        reading.refusal = (
            f"each row names {len(image_columns)} images (columns {', '.join(image_columns)}) and {missing}: a row's "
            "labels are not each image's; refusing rather than labelling one image a row"
        )
        return
    reading.id_column, reading.per_image, reading.group_column = image_columns[0], own, group
    used = {group, *own.values()}
    reading.metadata = [column for column in columns if _words(column) & METADATA_WORDS and column not in used]
    _joined_labels(reading, [row.get(column, "") for row in rows for column in own.values()], options.multi_label)
    if reading.multi_label:
        reading.class_columns = _coded_columns(rows, [column for column in columns if column not in used])


def keyword_classes(
    rows: Table, own: dict[str, str], classes: list[str], separator: str, none: Sequence[str] = ()
) -> dict[str, str]:
    """Each keyword of the images' own columns -> the class column (a row's, i.e. a patient's: ODIR's N, D, G, ...)
    set most often in the rows where one of its images carries the keyword, the rarer class where two tie, if
    that class is set in at least half of them (else the keyword stays a label of its own). A keyword's own class
    is set in every row that carries it; another class only where the row's other image has it."""
    rows_with: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        for column in own.values():
            for keyword in {part.strip() for part in row.get(column, "").split(separator) if part.strip()}:
                rows_with.setdefault(keyword, []).append(row)
    overall = {column: sum(row.get(column, "") in POSITIVE_CODES for row in rows) for column in classes}
    names = {}
    for keyword, found in sorted(rows_with.items()):
        shares = {column: sum(row.get(column, "") in POSITIVE_CODES for row in found) for column in classes}
        best = max(classes, key=lambda column: (shares[column], -overall[column]))
        if keyword not in none and shares[best] >= len(found) / 2:
            names[keyword] = best
    return names


def _group_column(columns: list[str], rows: Table) -> str | None:
    """The column of ids that several images share (patient, lesion, subject, study): named for one by a whole word
    that no measurement word joins (`Patient Age` is an age, `Patient Sex` a sex: metadata, not groups), and
    holding ids, not a handful of values shared by all (a sex, a site) nor measurements (58.5). A column of
    distinct ids is a group too: one image per patient, as far as the sample shows."""
    for word in GROUP_WORDS:
        for column in columns:
            words = _words(column)
            if word in words and not words & METADATA_WORDS and _holds_group_ids(rows, column):
                return column
    return None


def _holds_group_ids(rows: Table, column: str) -> bool:
    cells = [row.get(column, "") for row in rows if row.get(column, "")]
    distinct = len(set(cells))
    if distinct < max(2, GROUP_MIN_SHARE * len(cells)) or set(cells) <= LABEL_CODES:  # codes: CheXpert's Lung Lesion
        return False
    return not any(_is_fraction(cell) for cell in cells)  # a measurement (58.5), not an id


def _is_fraction(cell: str) -> bool:
    try:
        return not float(cell).is_integer()
    except ValueError:
        return False


def _choose_label(reading: TableReading, rows: Table, columns: list[str]) -> None:
    evident = [column for column in columns if column.lower() in LABEL_WORDS]  # dx before dx_type
    evident = evident or [column for column in columns if _words(column) & LABEL_WORDS]
    if len(evident) == 1:
        reading.label_column = evident[0]
        return
    if len(evident) > 1:
        reading.rejected = "several columns are named like a label: " + _describe_columns(rows, evident)
        return
    # an id (site_id) or a description of the patient (sex, age, site) is no label, even as the only other column
    candidates = [
        column
        for column in columns
        if _low_cardinality(rows, column) and not _words(column) & (METADATA_WORDS | {"id"})
    ]
    if len(columns) == 1 and candidates:
        reading.label_column = candidates[0]  # the table's only column beside the id: not a guess
        return
    reading.rejected = "no column is named like a label" + (
        "; candidates: " + _describe_columns(rows, candidates) if candidates else ""
    )


def _describe_columns(rows: Table, columns: list[str]) -> str:
    return ", ".join(f"{column} ({len(value_counts(rows, column))} values)" for column in columns)


def split_lists(
    listing: Listing, candidates: list[str], keys: set[str], names: set[str], encoding: str = "utf-8"
) -> dict[str, str]:
    """Archive split -> list file, for text files named for a split that list image names (NIH's test_list.txt)."""
    found: dict[str, str] = {}
    for member in candidates:
        stem = member_stem(member)
        if member_suffix(member) != ".txt" or split_name(stem) is None:
            continue
        if listing.members[member].file_size > TABLE_MAX_BYTES:
            continue
        try:
            text = decode_text(member, listing.read(member), encoding)
        except PipelineError:
            continue
        lines = [line.strip() for line in text.splitlines()[:SAMPLE_ROWS]]
        lines = [line for line in lines if line]
        matched = sum(id_key(line, IMAGE_SUFFIXES) in keys or line in names for line in lines)
        if lines and matched >= ID_MATCH_SHARE * len(lines):
            found[stem] = member
    return found


def parse_column(listing: Listing, member: str, column: str, encoding: str = "utf-8") -> list[str]:
    """Every value of one column of a table (read whole)."""
    return sorted(value_counts(parse_table(member, listing.read(member), encoding=encoding), column))


def image_members(listing: Listing, ignored: list[Rule]) -> list[str]:
    """Images by extension: the ordinary formats and DICOM (restructure converts it)."""
    suffixes = IMAGE_SUFFIXES | DICOM_SUFFIXES
    return [name for name in listing.members if member_suffix(name) in suffixes and not is_ignored(name, ignored)]


def bare_dicom_members(listing: Listing, ignored: list[Rule], sniffed: int = 20) -> list[str]:
    """DICOM files without an extension, known by the `DICM` preamble at byte 128 (of the first few)."""
    bare = [name for name in listing.members if not member_suffix(name) and not is_ignored(name, ignored)]
    sample = [name for name in bare[:sniffed] if listing.members[name].file_size <= TABLE_MAX_BYTES]
    if sample and all(listing.read(name)[128:132] == b"DICM" for name in sample):
        return bare
    return []


def image_keys(images: list[str]) -> tuple[set[str], set[str]]:
    """What a table's id cell may be to name one of `images`: each image's path without its extension and every
    end of that path (`x`, `study1/x`, `train/p1/study1/x`: a path id may start at any folder), and its file name."""
    keys = set()
    for image in images:
        parts = [*image.split("/")[:-1], image_key(image)]
        keys.update("/".join(parts[start:]) for start in range(len(parts)))
    return keys, {member_name(image) for image in images}
