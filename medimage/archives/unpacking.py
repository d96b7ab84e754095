"""Unpack an archive into <source_split>/<label>/<file> plus the interim manifest, member by member.

Members are read one at a time (never extracted whole), validated, hashed and written in one pass.
Corrupt or non-image files are skipped and listed in skipped.csv (or fail the stage: restructure.on_corrupt).
"""

from __future__ import annotations

import hashlib
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from medimage import manifest
from medimage.archives import dicom
from medimage.archives.layout import Layout, Placement, top_level_entries
from medimage.archives.reading import MAX_SEGMENT_BYTES, CorruptMember, Limits, checked_members, open_zip, read_member
from medimage.archives.tables import TableLabels, build_labels, image_key
from medimage.archives.validation import EXTENSION_FORMATS, ImageInfo, InvalidImage, inspect_image
from medimage.atomic import atomic_dir, write_csv
from medimage.errors import PipelineError
from medimage.manifest import InterimRow
from medimage.paths import MANIFEST, METADATA, ORIGINALS, SKIPPED
from medimage.settings.files import dataset_file
from medimage.settings.restructure import DicomSettings, RestructureEntry, RestructureSettings
from medimage.threads import image_threads

MEMBERS_IN_FLIGHT = 8  # each is in memory whole (up to restructure.max_member_mb)
RESERVED_NAMES = {ORIGINALS, MANIFEST, SKIPPED, METADATA}  # what restructure writes beside the split folders


@dataclass(frozen=True)
class Skipped:
    member: str
    reason: str  # corrupt | not_image | unsupported (a DICOM file we cannot show: multi-frame, no decoder, too big)
    detail: str


@dataclass
class Plan:
    """What the archive holds, by member, before anything is read."""

    placed: list[tuple[str, Placement]] = field(default_factory=list)
    ignored_by_rule: Counter[str] = field(default_factory=Counter)
    unmatched: list[str] = field(default_factory=list)
    originals: list[tuple[str, Placement]] = field(default_factory=list)  # `sources`, placed under originals/<file>
    unlabelled: list[str] = field(default_factory=list)  # images the label table has no label for
    duplicate_copies: list[str] = field(default_factory=list)  # same name, size and CRC as a member already placed
    missing_images: list[str] = field(default_factory=list)  # label table ids no image was found for
    rows_without_label: int = 0  # label table rows with an empty label cell (or no one-hot column set)
    metadata: dict[str, tuple[str, ...]] = field(default_factory=dict)  # interim path -> labels.metadata cells


def same_content(first: zipfile.ZipInfo, second: zipfile.ZipInfo) -> bool:
    return (first.file_size, first.CRC) == (second.file_size, second.CRC)


def folder_name(value: str, what: str, where: str) -> str:
    """A label or split (a folder name or a table cell: untrusted) in NFC, checked before it names a folder."""
    value = unicodedata.normalize("NFC", value)
    if not value or value in (".", "..") or any(character in value for character in "/\\\x00"):
        raise PipelineError(f"{what} {value!r} cannot name a folder; map it to a plain name ({where})")
    if any(unicodedata.category(character) in ("Cc", "Zl", "Zp") for character in value):
        raise PipelineError(
            f"{what} {ascii(value)} holds a control character or a line break; map it to a plain name ({where})"
        )
    if len(value.encode("utf-8")) > MAX_SEGMENT_BYTES:
        raise PipelineError(
            f"{what} {value[:40]!r}... is {len(value.encode('utf-8'))} bytes, over the {MAX_SEGMENT_BYTES} a file "
            f"name may have; map it to a shorter name ({where})"
        )
    return value


def spelling_key(value: str) -> str:
    """What file systems and readers may take for the same name: case, width, normalisation and invisible
    characters (format characters: zero-width spaces, joiners, marks) set aside."""
    visible = "".join(c for c in unicodedata.normalize("NFKC", value) if unicodedata.category(c) != "Cf")
    return visible.casefold()


@dataclass
class Spellings:
    """The names met so far, by what file systems and readers may take for the same name (`spelling_key`)."""

    where: str
    first: dict[tuple[str, str], str] = field(default_factory=dict)  # (what, key) -> the first spelling

    def refuse_look_alike(self, value: str, what: str) -> None:
        """PipelineError naming two spellings that are one name to some file system or on every page."""
        known = self.first.setdefault((what, spelling_key(value)), value)
        if known != value:
            raise PipelineError(
                f"{what}s {ascii(known)} and {ascii(value)} differ only by letter case, width, Unicode "
                f"normalisation or invisible characters: one folder on some file systems, the same on every page; "
                f"map one to the other ({self.where})"
            )


def checked_folders(split: str, label: str, where: str) -> tuple[str, str]:
    """A placement's split and label, checked and in NFC; PipelineError for a split that would land on a file or
    folder restructure writes itself (originals/, manifest.csv, ...)."""
    checked_split = folder_name(split, "split", f"{where}: split_map")
    if checked_split.casefold() in RESERVED_NAMES:
        raise PipelineError(
            f"the archive split {split!r} takes the name of {checked_split.casefold()!r}, which restructure writes "
            f"itself; rename the split with split_map ({where})"
        )
    return checked_split, folder_name(label, "label", f"{where}: labels.names") if label else ""


def with_table_label(
    placement: Placement, labels: TableLabels, key: str, group_of: Callable[[str], str]
) -> Placement | None:
    """The placement with the label, group and split the table gives `key`; a table that names images by path
    names their files by it too (CheXpert's view1_frontal.jpg is in every study), and the registry's group_regex
    rule then reads the patient from it (its patient00001 folder)."""
    found = labels.lookup(key)
    if found is None:
        return None
    if labels.by_path:
        extension = placement.file[len(image_key(placement.file)) :]
        file = key.replace("/", "_") + extension
        placement = replace(placement, file=file, group=group_of(file))
    return replace(
        placement,
        label=found.label,
        group=found.group or placement.group,
        source_split=found.split or placement.source_split,
        targets=found.targets,
    )


def plan_members(
    infos: dict[str, zipfile.ZipInfo], layout: Layout, dataset: RestructureEntry, labels: TableLabels | None = None
) -> Plan:
    plan = Plan()
    where = str(dataset_file(dataset.name))
    targets: dict[str, str] = {}
    image_of_key: dict[str, str] = {}  # table mode: one image per table id
    checked: dict[tuple[str, str], tuple[str, str]] = {}  # (split, label) as the archive spells them -> checked
    spellings = Spellings(where)
    for name, info in infos.items():
        original = layout.original(name)
        if original is not None:
            plan.originals.append((name, Placement(ORIGINALS, "", original, "")))
            continue
        rule = layout.ignore_rule(name)
        if rule is not None:
            plan.ignored_by_rule[rule] += 1
            continue
        placement = layout.place(name)
        if placement is None:
            plan.unmatched.append(name)
            continue
        if PurePosixPath(placement.file).suffix.lower() in dicom.DICOM_SUFFIXES:  # written as a PNG
            placement = replace(placement, file=str(PurePosixPath(placement.file).with_suffix(".png")))
        if labels is not None:
            key = labels.key_of(name)
            if key in image_of_key:
                if not same_content(infos[image_of_key[key]], info):
                    raise PipelineError(
                        f"{dataset.name}: members {image_of_key[key]!r} and {name!r} differ but both are image "
                        f"{key!r} of the label table; add an ignore rule for one of them in {where}"
                    )
                plan.duplicate_copies.append(name)
                continue
            image_of_key[key] = name
            placement = with_table_label(placement, labels, key, layout.group_of)
            if placement is None:
                plan.unlabelled.append(name)
                continue
        folders = (placement.source_split, placement.label)
        if folders not in checked:
            checked[folders] = checked_folders(*folders, where)
            spellings.refuse_look_alike(placement.source_split, "split")
            if placement.label:
                spellings.refuse_look_alike(placement.label, "label")
        placement = replace(placement, source_split=checked[folders][0], label=checked[folders][1])
        if labels is not None and labels.by_key[key].metadata:
            plan.metadata[placement.path] = labels.by_key[key].metadata  # by the path written: labels in NFC
        if placement.path in targets:
            if not same_content(infos[targets[placement.path]], info):
                raise PipelineError(
                    f"{dataset.name}: members {targets[placement.path]!r} and {name!r} both map to {placement.path}; "
                    f"add an ignore rule for one of them in {where}"
                )
            plan.duplicate_copies.append(name)
            continue
        targets[placement.path] = name
        plan.placed.append((name, placement))
    if labels is not None:
        plan.missing_images = labels.missing_images()
        plan.rows_without_label = labels.rows_without_label
        for name in labels.target_names:
            folder_name(name, "label", f"{where}: labels.names")  # a label names a column, a page entry, an output
            spellings.refuse_look_alike(name, "label")
            if manifest.JOINED in name:
                raise PipelineError(
                    f"label {name!r} holds {manifest.JOINED!r}; map it to a plain name ({where}: labels.names)"
                )
    if not plan.placed:
        found = f"; {len(plan.unlabelled)} images have no row in {dataset.labels.table}" if plan.unlabelled else ""
        raise PipelineError(
            f"{dataset.name}: no member of the archive matches the layout {dataset.layout} in {where}{found}; "
            f"the archive's top-level entries are: {top_level_entries(list(infos))}"
        )
    return plan


def extension_mismatch(row: InterimRow) -> bool:
    expected = EXTENSION_FORMATS.get(PurePosixPath(row.path).suffix.lower())
    return expected is not None and expected != row.format


def summarise(rows: list[InterimRow], skipped: list[Skipped], plan: Plan) -> dict:
    hashes = Counter(row.sha256 for row in rows)
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        split = counts.setdefault(row.source_split, {})
        for label in [name for name, value in row.targets if value == 1] if row.targets else [row.label]:
            split[label] = split.get(label, 0) + 1  # a multi-label set: positives per label
    reasons = Counter(item.reason for item in skipped)
    values = {name: {"positive": 0, "negative": 0, "unknown": 0} for name in manifest.class_names(rows)}
    for row in rows:
        for name, value in row.targets:
            values[name]["unknown" if value is None else "positive" if value else "negative"] += 1
    return {
        "images": len(rows),
        "skipped": {
            "corrupt": reasons["corrupt"],
            "not_image": reasons["not_image"],
            "unsupported": reasons["unsupported"],
            "ignored_by_layout": sum(plan.ignored_by_rule.values()) + len(plan.unmatched),
            "unlabelled": len(plan.unlabelled),
            "duplicate_copy": len(plan.duplicate_copies),
        },
        "duplicates": sum(count for count in hashes.values() if count > 1),
        "extension_mismatch": sum(extension_mismatch(row) for row in rows),
        "counts": {split: dict(sorted(labels.items())) for split, labels in sorted(counts.items())},
        **({"label_values": values} if manifest.is_multi_label(rows) else {}),
        "ignored_by_rule": dict(sorted(plan.ignored_by_rule.items())),
        "unmatched": len(plan.unmatched),
        "unmatched_examples": sorted(plan.unmatched)[:5],
        "unlabelled_examples": sorted(plan.unlabelled)[:5],
        "duplicate_copy_examples": sorted(plan.duplicate_copies)[:5],
        "label_table": {
            "rows_without_label": plan.rows_without_label,
            "rows_without_image": len(plan.missing_images),
            "rows_without_image_examples": plan.missing_images[:5],
        },
    }


def read_table_member(
    archive: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], member: str, limits: Limits, dataset: RestructureEntry
) -> bytes:
    if member not in infos:
        raise PipelineError(
            f"{dataset.name}: the archive has no member {member!r} ({dataset_file(dataset.name)}: labels); "
            f"its top-level entries are: {top_level_entries(list(infos))}"
        )
    try:
        return read_member(archive, infos[member], limits)
    except CorruptMember as error:
        raise PipelineError(f"{dataset.name}: the table {member!r} is corrupt in the archive ({error})") from None


def take_member(
    archive: zipfile.ZipFile,
    name: str,
    info: zipfile.ZipInfo,
    placement: Placement,
    limits: Limits,
    staging: Path,
    settings: DicomSettings,
) -> tuple[InterimRow, dict[str, str]] | Skipped:
    """Read, validate, hash and write one member (its folder already exists): its row and, for a DICOM file, its
    subgroup tags; a Skipped when it is not a good image. A DICOM file is written as the PNG it displays as."""
    made: manifest.Made = ()
    tags: dict[str, str] = {}
    group = placement.group
    try:
        data = read_member(archive, info, limits)
        if dicom.is_dicom(name, data):
            converted = dicom.convert(data, settings)
            data, made, tags = converted.png, converted.made, converted.tags
            image = ImageInfo(converted.width, converted.height, converted.channels, "PNG")
            group = group or converted.patient  # the table's or the layout's patient first
        else:
            image = inspect_image(data)
    except (CorruptMember, InvalidImage) as problem:
        return Skipped(name, problem.reason if isinstance(problem, InvalidImage) else "corrupt", str(problem))
    (staging / placement.path).write_bytes(data)
    row = InterimRow(
        path=placement.path,
        label=placement.label or manifest.joined_positives(placement.targets),
        source_split=placement.source_split,
        member=name,
        sha256=hashlib.sha256(data).hexdigest(),
        width=image.width,
        height=image.height,
        group=group,
        channels=image.channels,
        bytes=len(data),
        format=image.format,
        targets=placement.targets,
        made=made,
    )
    return row, tags


def restructure(
    archive_path: Path, dataset: RestructureEntry, settings: RestructureSettings, destination: Path
) -> dict:
    """Stream the archive into `destination` (replaced atomically); return the restructure metrics."""
    layout = Layout(dataset)
    limits = Limits.from_settings(settings)
    with open_zip(archive_path) as archive:
        infos = dict(checked_members(archive, limits))
        labels = None
        if dataset.labels is not None:
            labels = build_labels(
                dataset.labels,
                lambda member: read_table_member(archive, infos, member, limits, dataset),
                layout.extensions,
                layout.canonical_split,
                str(dataset_file(dataset.name)),
            )
        plan = plan_members(infos, layout, dataset, labels)
        with atomic_dir(destination) as staging:
            taken, skipped, tags = take_members(archive, infos, plan, limits, staging, dataset.name, settings)
            rows, originals = write_interim(staging, taken, skipped, dataset.name)
            columns, metadata = with_dicom_tags(dataset.labels.metadata if dataset.labels else [], plan.metadata, tags)
            write_metadata(staging, rows, columns, metadata)
    return summarise(rows, skipped, plan) | {"originals": len(originals)}


def with_dicom_tags(
    columns: list[str], metadata: dict[str, tuple[str, ...]], tags: dict[str, dict[str, str]]
) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """The table's metadata columns and cells (by interim path) followed by the subgroup tags any DICOM file carried."""
    found = [tag for tag in dicom.METADATA_TAGS if any(tag in cells for cells in tags.values())]
    if not found:
        return columns, metadata
    blank = ("",) * len(columns)
    cells = {
        path: (*metadata.get(path, blank), *(tags.get(path, {}).get(tag, "") for tag in found))
        for path in {*metadata, *tags}
    }
    return [*columns, *found], cells


def write_metadata(
    staging: Path, rows: list[InterimRow], columns: list[str], metadata: dict[str, tuple[str, ...]]
) -> None:
    """metadata.csv: each image's labels.metadata cells (a header alone where the registry names none), so that
    evaluate, which depends on this one file, finds it for every dataset."""
    found = [
        dict(zip(["path", *columns], (row.path, *metadata[row.path]), strict=True))
        for row in rows
        if row.path in metadata
    ]
    write_csv(staging / METADATA, ["path", *columns], found, spreadsheet=True)


def take_members(
    archive: zipfile.ZipFile,
    infos: dict[str, zipfile.ZipInfo],
    plan: Plan,
    limits: Limits,
    staging: Path,
    name: str,
    settings: RestructureSettings,
) -> tuple[list[InterimRow], list[Skipped], dict[str, dict[str, str]]]:
    """Every planned member written under `staging`: its row, or why it was skipped (restructure.on_corrupt: fail
    stops at the first); and the subgroup tags of each image converted from DICOM, by its path.

    Members are taken by a few threads at once: inflating, decoding and hashing release the GIL, and the
    JPEG decode that proves an image is whole is most of the work. Only the members in flight are in memory.
    """
    everything = plan.placed + plan.originals
    for folder in sorted({(staging / placement.path).parent for _, placement in everything}):
        folder.mkdir(parents=True, exist_ok=True)
    rows: list[InterimRow] = []
    skipped: list[Skipped] = []
    tags: dict[str, dict[str, str]] = {}
    pool = ThreadPoolExecutor(max_workers=image_threads(MEMBERS_IN_FLIGHT))
    try:
        results = pool.map(
            lambda item: take_member(archive, item[0], infos[item[0]], item[1], limits, staging, settings.dicom),
            everything,
        )
        for result in tqdm(results, total=len(everything), desc=f"restructure {name}", unit="img", disable=None):
            if isinstance(result, tuple):
                rows.append(result[0])
                if result[1]:
                    tags[result[0].path] = result[1]
            elif settings.on_corrupt == "fail":
                raise PipelineError(
                    f"{name}: {result.member!r} is {result.reason} ({result.detail}); "
                    "set restructure.on_corrupt: skip to skip such files"
                )
            else:
                skipped.append(result)
    finally:
        pool.shutdown(cancel_futures=True)
    return rows, skipped, tags


def write_interim(
    staging: Path, taken: list[InterimRow], skipped: list[Skipped], name: str
) -> tuple[list[InterimRow], list[InterimRow]]:
    """The manifests (class images; originals, even when empty) and skipped.csv; the rows of each manifest."""
    originals = sorted((row for row in taken if row.source_split == ORIGINALS), key=lambda row: row.path)
    rows = sorted((row for row in taken if row.source_split != ORIGINALS), key=lambda row: row.path)
    if not rows:
        raise PipelineError(f"{name}: all {len(skipped)} images matching the layout are corrupt or not images")
    manifest.write_manifest(staging, rows, InterimRow)
    # written even when empty: split's DVC dependency on the originals is this one file
    (staging / ORIGINALS).mkdir(exist_ok=True)
    manifest.write_manifest(staging / ORIGINALS, originals, InterimRow)
    skipped_rows = [asdict(item) for item in sorted(skipped, key=lambda item: item.member)]
    write_csv(staging / SKIPPED, ["member", "reason", "detail"], skipped_rows, spreadsheet=True)
    return rows, originals
