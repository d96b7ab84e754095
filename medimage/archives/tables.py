"""Tables inside an archive (CSV, TSV, XLSX): read them, and label images from one (registry key `labels`).

A label table names each image in an id column (its file name, with or without the extension) and gives its
label in one column (HAM10000 `dx`, APTOS `diagnosis`) or as one-hot columns (ISIC 2019 `MEL, NV, ...`: the
label is the column holding the maximum). An optional group column (a patient or lesion id) keeps an image's
relatives in one split; an optional split column or list files give the archive's own splits.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property

from medimage.archives.reading import MB, Limits, checked_members, member_stem, member_suffix
from medimage.errors import PipelineError
from medimage.manifest import Target, Targets
from medimage.settings.restructure import LabelTable, MultiLabel

TABLE_SUFFIXES = (".csv", ".tsv", ".xlsx")
MULTI_LABEL_SEPARATOR = "|"  # NIH ChestX-ray14 "Atelectasis|Effusion"
FULL_WIDTH_COMMA = "\uff0c"  # ODIR's keywords "moderate non proliferative retinopathy，laser spot"
MULTI_LABEL_SEPARATORS = (MULTI_LABEL_SEPARATOR, ";", ",", FULL_WIDTH_COMMA)
Table = list[dict[str, str]]
# a workbook's parts inflated: a label table's sheet is a few MB; 1 MB that inflates to 1 GB is a bomb
WORKBOOK_LIMITS = Limits(max_member_bytes=64 * MB, max_total_bytes=128 * MB, max_ratio=100, max_members=10_000)


def is_table(member: str) -> bool:
    return member_suffix(member) in TABLE_SUFFIXES


def decode_text(name: str, data: bytes, encoding: str = "utf-8") -> str:
    """A table's or list's text, decoded strictly: a character is never replaced (two labels that differ by one
    letter must not become one). UTF-8 may start with a byte order mark."""
    codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    try:
        return data.decode(codec)
    except UnicodeDecodeError as error:
        raise PipelineError(
            f"{name!r} is not {encoding} text: byte {data[error.start]:#04x} at offset {error.start:,} cannot be "
            f"decoded; name the file's encoding in the registry's labels.encoding (add: --encoding, e.g. cp1252)"
        ) from None


def parse_table(name: str, data: bytes, max_rows: int | None = None, encoding: str = "utf-8") -> Table:
    """Rows of a CSV/TSV/XLSX as dicts of stripped strings (the first sheet of a workbook; the first row names the
    columns); at most `max_rows` rows when given (a sample)."""
    if member_suffix(name) == ".xlsx":
        return _parse_workbook(name, data, max_rows)
    text = decode_text(name, data, encoding)
    delimiter = "\t" if name.lower().endswith(".tsv") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: Table = []
    try:
        header = [cell.strip() for cell in next(reader, [])]
        for cells in reader:
            if max_rows is not None and len(rows) >= max_rows:
                break
            if any(cell.strip() for cell in cells):
                rows.append({column: cell.strip() for column, cell in zip(header, cells, strict=False) if column})
    except csv.Error as error:  # a field past csv's limit (128 KB) or a broken quote: not a label table
        raise PipelineError(f"table {name!r} cannot be read at line {reader.line_num:,}: {error}") from None
    return rows


def _parse_workbook(name: str, data: bytes, max_rows: int | None) -> Table:
    import openpyxl  # only archives that ship workbooks pay for the import

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as parts:
            checked_members(parts, WORKBOOK_LIMITS)  # a workbook is a zip: its parts get the archive's checks
    except zipfile.BadZipFile:
        raise PipelineError(f"table {name!r} is not a readable XLSX workbook (not a zip)") from None
    except PipelineError as error:
        raise PipelineError(f"table {name!r}: {error}".replace("the archive", "the workbook")) from None
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises zipfile, KeyError and XML errors alike for a bad workbook
        raise PipelineError(f"table {name!r} is not a readable XLSX workbook ({type(error).__name__})") from None
    try:
        lines = workbook.worksheets[0].iter_rows(values_only=True)
        header = [_cell(value) for value in next(lines, ())]
        rows: Table = []
        for values in lines:
            if max_rows is not None and len(rows) >= max_rows:
                break
            cells = [_cell(value) for value in values]
            if any(cells):
                rows.append({column: cell for column, cell in zip(header, cells, strict=False) if column})
        return rows
    finally:
        workbook.close()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a workbook's 3 is 3.0
    return str(value).strip()


def image_key(file: str) -> str:
    """What a table's id cell is matched against: the file name without its image extension."""
    return member_stem(file)


def id_key(cell: str, image_suffixes: frozenset[str]) -> str:
    """An id cell as an image key: `ISIC_0024306` and `ISIC_0024306.jpg` both name ISIC_0024306.jpg; a path
    (CheXpert's `CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg`) keeps its folders."""
    cell = cell.replace("\\", "/").removeprefix("./")
    suffix = member_suffix(cell)
    return cell[: -len(suffix)] if suffix and suffix in image_suffixes else cell


def multi_label_cells(rows: Table, column: str) -> int:
    """Rows whose cell joins several labels: by `|` (NIH), or by `;`, `,` or `，` between values the column also
    holds alone (blood cells' `NEUTROPHIL, EOSINOPHIL`)."""
    cells = [row.get(column, "") for row in rows]
    alone = {cell for cell in cells if not any(separator in cell for separator in MULTI_LABEL_SEPARATORS)}

    def joined(cell: str) -> bool:
        if MULTI_LABEL_SEPARATOR in cell or FULL_WIDTH_COMMA in cell:
            return True
        for separator in MULTI_LABEL_SEPARATORS:
            parts = [part.strip() for part in cell.split(separator)]
            if len(parts) > 1 and all(part in alone for part in parts):
                return True
        return False

    return sum(joined(cell) for cell in cells if cell)


def one_hot_label(row: dict[str, str], columns: list[str]) -> str | None:
    """The column holding the maximum (a positive number), or None when none is set or several tie."""
    values = []
    for column in columns:
        try:
            values.append(float(row.get(column, "") or 0))
        except ValueError:
            return None
    top = max(values)
    if not math.isfinite(top) or top <= 0 or values.count(top) > 1:
        return None
    return columns[values.index(top)]


POLICY_VALUES: dict[str, Target] = {"ignore": None, "positive": 1, "negative": 0}
# CheXpert's cells: 1.0 positive, 0.0 negative, -1.0 uncertain, blank not mentioned
CODE_VALUES: dict[str, Target | str] = {"1": 1, "1.0": 1, "0": 0, "0.0": 0, "-1": "uncertain", "-1.0": "uncertain"}


@dataclass(frozen=True)
class TableLabel:
    label: str  # "" for a multi-label set: its labels are `targets`
    group: str
    split: str | None  # the archive's split from the table or the list files; None: from the layout
    metadata: tuple[str, ...] = ()  # the cells of the registry's labels.metadata columns, in their order
    targets: Targets = ()


@dataclass
class TableLabels:
    """Each image key's label, group and split, from the registry's label table; what could not be used, counted."""

    by_key: dict[str, TableLabel]
    rows_without_label: int = 0
    used: set[str] = field(default_factory=set)  # keys an image was found for

    @cached_property
    def by_path(self) -> bool:
        return any("/" in key for key in self.by_key)

    def key_of(self, member: str) -> str:
        """The table key that names the member: the longest end of its path, without the extension, that the
        table holds (a path id matches its folders too), the whole path where none is (files of one name lie in
        many folders: CheXpert's view1_frontal.jpg); the file name without the extension in a table of names."""
        name = image_key(member)
        if not self.by_path:
            return name
        folders = member.split("/")[:-1]
        for start in range(len(folders)):
            candidate = "/".join([*folders[start:], name])
            if candidate in self.by_key:
                return candidate
        return "/".join([*folders, name])

    def lookup(self, key: str) -> TableLabel | None:
        """The label of a table key (`key_of`), noting that an image was found for it."""
        found = self.by_key.get(key)
        if found is not None:
            self.used.add(key)
        return found

    @cached_property
    def target_names(self) -> list[str]:
        """A multi-label set's labels ([] for one label per image)."""
        first = next(iter(self.by_key.values()), None)
        return [name for name, _ in first.targets] if first else []

    def missing_images(self) -> list[str]:
        """Table ids no image was found for."""
        return sorted(set(self.by_key) - self.used)


def build_labels(
    spec: LabelTable,
    read: Callable[[str], bytes],
    image_suffixes: frozenset[str],
    canonical_split: Callable[[str], str],
    where: str,
) -> TableLabels:
    """Read the registry's label table (and split lists) through `read(member)`; PipelineError naming `where`
    (the registry file) and the column for anything that cannot be a label table."""
    rows = parse_table(spec.table, read(spec.table), encoding=spec.encoding)
    if not rows:
        raise PipelineError(f"label table {spec.table!r} has no rows ({where}: labels.table)")
    for member in spec.more_tables:
        more = parse_table(member, read(member), encoding=spec.encoding)
        if more and set(more[0]) != set(rows[0]):
            raise PipelineError(
                f"table {member!r} has other columns than {spec.table!r} ({where}: labels.more_tables): "
                f"{sorted(set(more[0]) ^ set(rows[0]))}"
            )
        rows += more
    joined = _joined_rows(spec, read, image_suffixes, where)
    columns = {column for row in [*rows, *list(joined.values())[:1]] for column in row}
    named = [spec.id_column, *([spec.label_column] if spec.label_column else []), *spec.one_hot]
    named += [column for pair in spec.per_image.items() for column in pair if column not in named]
    named += [column for column in (spec.group_column, spec.split_column) if column] + spec.metadata
    absent = [column for column in named if column not in columns]
    if absent:
        tables = " and ".join(repr(table) for table in (spec.table, spec.join.table if spec.join else None) if table)
        raise PipelineError(
            f"label table {tables} has no column(s) {absent} ({where}: labels); its columns: {sorted(columns)}"
        )
    several = sum(multi_label_cells(rows, column) for column in spec.per_image.values())
    several += multi_label_cells(rows, spec.label_column) if spec.label_column else 0
    several += one_hot_several(rows, spec.one_hot) if spec.one_hot else 0
    if several and spec.multi_label is None:
        label_columns = [spec.label_column] if spec.label_column else [*spec.per_image.values()] or spec.one_hot
        how = f"{'column' if len(label_columns) == 1 else 'columns'} {', '.join(map(repr, label_columns))}"
        raise PipelineError(
            f"{how} of {spec.table!r} give several labels to {several:,} images (joined by one of "
            f"{' '.join(MULTI_LABEL_SEPARATORS)}, or several columns set): multi-label training is not supported yet; "
            "refusing rather than keeping one label or dropping those rows"
        )
    split_of_key = _split_lists(spec, read, image_suffixes, canonical_split)
    names = {str(raw): readable for raw, readable in spec.names.items()}
    labels = TableLabels(by_key={})
    values_of_key: dict[str, dict[str, Target]] = {}  # multi-label: every label the row sets, with its value
    for row, id_column, raw in _labelled_cells(rows, spec, where):
        key = id_key(row.get(id_column, ""), image_suffixes)
        if not key:
            continue
        if raw is None or raw == "":  # a multi-label row of no finding is {}: labelled
            labels.rows_without_label += 1
            continue
        row = joined.get(key, {}) | row
        split = canonical_split(row[spec.split_column]) if spec.split_column else split_of_key.get(key)
        group = row.get(spec.group_column, "") if spec.group_column else ""
        label = "" if isinstance(raw, dict) else names.get(raw, raw)
        found = TableLabel(label, group, split, tuple(row.get(column, "") for column in spec.metadata))
        if isinstance(raw, dict):
            found = replace(found, targets=tuple(sorted(raw.items())))
        known = labels.by_key.setdefault(key, found)
        if known != found:
            first, second = known.label or known.targets, found.label or found.targets
            raise PipelineError(
                f"label table {spec.table!r} gives image {key!r} two labels or groups: {first!r} (group "
                f"{known.group!r}) and {second!r} (group {found.group!r}); fix the table or ignore it"
            )
        if isinstance(raw, dict):
            values_of_key[key] = raw
    if spec.multi_label is not None:
        every = sorted({name for values in values_of_key.values() for name in values} | _label_columns(spec))
        for key, values in values_of_key.items():
            targets = tuple((name, values.get(name, 0)) for name in every)  # a label a cell leaves out: absent
            labels.by_key[key] = replace(labels.by_key[key], targets=targets)
    return labels


Raw = str | dict[str, Target] | None  # one label, a multi-label set's values by label, or none found


def _labelled_cells(rows: Table, spec: LabelTable, where: str) -> Iterator[tuple[dict[str, str], str, Raw]]:
    """(row, the column naming the image, its raw label) for every image a row names: one, or several (per_image)."""
    for row in rows:
        if spec.per_image:
            for id_column, label_column in spec.per_image.items():
                yield row, id_column, _raw_label(row, label_column, spec, where)
        else:
            yield row, spec.id_column, _raw_label(row, spec.label_column, spec, where)


def _raw_label(row: dict[str, str], column: str | None, spec: LabelTable, where: str) -> Raw:
    cell = row.get(column, "") if column else ""
    if spec.multi_label is None:
        return cell if column else one_hot_label(row, spec.one_hot)
    if column:
        return joined_values(cell, spec.multi_label, spec.names) if cell else None
    return coded_values(row, spec, where)


def joined_values(cell: str, multi: MultiLabel, names: dict[str, str]) -> dict[str, Target]:
    """The labels a cell joins (`Effusion|Mass`), each 1; the none value (`No Finding`) sets no label."""
    parts = [part.strip() for part in cell.split(multi.separator)]
    return {names.get(part, part): 1 for part in parts if part and part not in multi.none}


def _label_columns(spec: LabelTable) -> set[str]:
    """A multi-hot table's labels: its one_hot columns (through `names`) but those meaning no finding."""
    return {spec.names.get(column, column) for column in spec.one_hot if column not in spec.multi_label.none}


def coded_values(row: dict[str, str], spec: LabelTable, where: str) -> dict[str, Target]:
    """Every one_hot column's value: 1 / 0, CheXpert's -1 (uncertain) and blank cells by the registry's policies."""
    multi = spec.multi_label
    values: dict[str, Target] = {}
    for column in spec.one_hot:
        if column in multi.none:
            continue
        cell = row.get(column, "")
        code = CODE_VALUES.get(cell, "blank" if not cell else None)
        if code is None:
            raise PipelineError(
                f"column {column!r} of {spec.table!r} holds {cell[:40]!r}, none of 1, 0, -1 (uncertain) or blank "
                f"({where}: labels.one_hot)"
            )
        if isinstance(code, str):
            code = POLICY_VALUES[multi.uncertain if code == "uncertain" else multi.blank]
        values[spec.names.get(column, column)] = code
    return values


def _joined_rows(
    spec: LabelTable, read: Callable[[str], bytes], image_suffixes: frozenset[str], where: str
) -> dict[str, dict[str, str]]:
    """Image key -> the row of the registry's second table (labels.join: groups and metadata by image id)."""
    if spec.join is None:
        return {}
    rows = parse_table(spec.join.table, read(spec.join.table), encoding=spec.encoding)
    if rows and spec.join.id_column not in rows[0]:
        raise PipelineError(
            f"table {spec.join.table!r} has no column {spec.join.id_column!r} ({where}: labels.join.id_column)"
        )
    return {id_key(row.get(spec.join.id_column, ""), image_suffixes): row for row in rows}


def one_hot_several(rows: Table, columns: list[str]) -> int:
    """Rows that set several one-hot columns at their largest value: several labels, not one."""
    several = 0
    for row in rows:
        try:
            values = [float(row.get(column, "") or 0) for column in columns]
        except ValueError:
            continue
        top = max(values)
        several += math.isfinite(top) and top > 0 and values.count(top) > 1
    return several


def _split_lists(
    spec: LabelTable,
    read: Callable[[str], bytes],
    image_suffixes: frozenset[str],
    canonical_split: Callable[[str], str],
) -> dict[str, str]:
    """Image key -> split from list files (one image name per line, NIH's train_val_list.txt / test_list.txt)."""
    split_of_key: dict[str, str] = {}
    for archive_split, member in spec.split_lists.items():
        for line in decode_text(member, read(member), spec.encoding).splitlines():
            if line.strip():
                split_of_key[id_key(line.strip(), image_suffixes)] = canonical_split(archive_split)
    return split_of_key


def value_counts(rows: Table, column: str) -> Counter[str]:
    return Counter(row.get(column, "") for row in rows)
