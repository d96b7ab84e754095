"""`python -m stages.add`: turn an inspected archive into a registry entry with its evidence, and register it.

`propose` decides folder- or table-labelled and every key from medimage/archives/inspection.py's readings, then
checks the entry by planning the archive exactly as restructure will (same Layout, same label table code), so the
counts written beside each key are restructure's own. `render` writes that as commented YAML; `register` adds the
dataset to params.yaml (and its local path to fetch.paths) and its model to dvc.yaml's artifacts; the three files
change together or not at all.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import yaml
from pydantic import ValidationError
from ruamel.yaml import YAML

from medimage.archives import dicom, inspection
from medimage.archives.inspection import Ambiguous, Listing, Rule, TableReading
from medimage.archives.layout import NO_SPLIT, Layout, top_level_entries
from medimage.archives.reading import member_suffix
from medimage.archives.tables import build_labels, is_table, parse_table
from medimage.archives.unpacking import Plan, plan_members
from medimage.archives.validation import InvalidImage
from medimage.atomic import atomic_files
from medimage.errors import PipelineError
from medimage.settings.files import DATASET_KEYS, PARAMS_FILE, dataset_file
from medimage.settings.project import DatasetSpec

DVC_FILE = "dvc.yaml"
ARCHIVE_SPLITS = "the archive's own splits: "  # the evidence line add prints beside the counts


@dataclass
class Proposal:
    name: str
    entry: dict  # the registry keys, in the order they are written
    notes: dict[str, str] = field(default_factory=dict)  # key -> the evidence written beside it
    rules: list[Rule] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # lines written at the top


def propose(
    name: str,
    listing: Listing,
    origin: dict,
    label_column: str | None = None,
    group_column: str | None = None,
    table: str | None = None,
    encoding: str = "utf-8",
    multi_label: bool = False,
) -> Proposal:
    """The registry entry for the listed archive; `origin` holds kaggle, archive and fetch. PipelineError (or
    Ambiguous, with the candidates and the option that chooses) where the archive cannot be read as a dataset."""
    options = inspection.TableOptions(label_column, group_column, encoding, multi_label)
    names = list(listing.members)
    rules = inspection.junk_rules(names)
    rules += inspection.segment_rules(names, inspection.MASK_FOLDERS, "segmentation masks, not class images")
    rules += inspection.duplicate_trees(listing.members, rules)
    images = inspection.image_members(listing, rules)
    if not images:
        bare = inspection.bare_dicom_members(listing, rules)
        if bare:
            raise PipelineError(
                f"{name}: {len(bare):,} DICOM files without an extension (e.g. {bare[0]}): a layout matches files by "
                "extension; rename them to .dcm"
            )
        raise PipelineError(f"{name}: no image files found; top-level entries: {top_level_entries(names)}")
    keys, file_names = inspection.image_keys(images)
    image_set = set(images)
    candidates = [member for member in names if member not in image_set and not inspection.is_ignored(member, rules)]
    tables = [
        inspection.read_table(member, listing, keys, file_names, options)
        for member in candidates
        if is_table(member) and (table is None or member == table)
    ]
    shapes = inspection.folder_shapes(images)
    refused = [reading for reading in tables if reading.refusal is not None]
    if refused:
        raise PipelineError(f"{name}: table {refused[0].member}: {refused[0].refusal}")
    label_tables = [reading for reading in tables if reading.rejected is None]
    if any(not reading.localisation for reading in label_tables):
        for reading in label_tables:
            if reading.localisation:
                reading.rejected = "a localisation table (boxes, several rows an image), not the per-image labels"
        label_tables = [reading for reading in label_tables if not reading.localisation]
    forced = label_column is not None or group_column is not None or table is not None
    proposal = Proposal(name, dict(origin), rules=rules)
    more_tables = [] if len(label_tables) < 2 or not _alike(label_tables) else [t.member for t in label_tables[1:]]
    if len(label_tables) > 1 and not more_tables:
        coarsest = inspection.coarsest(label_tables)
        if coarsest is None:
            listed = ", ".join(f"{t.member} ({t.label_column or 'one-hot'})" for t in label_tables)
            raise Ambiguous(f"{name}: several tables label the images: {listed}; choose one with --table MEMBER")
        proposal.evidence += [
            f"table {t.member} labels the same images more finely ({t.label_column}, each value within one "
            f"{coarsest.label_column} of {coarsest.member}): --table {t.member} takes it instead"
            for t in label_tables
            if t is not coarsest
        ]
        label_tables = [coarsest]
    if label_tables:
        _table_entry(proposal, label_tables[0], tables, shapes, listing, candidates, images, encoding)
        if more_tables:
            proposal.entry["labels"]["more_tables"] = more_tables
            proposal.notes["labels"] += f"; {', '.join(more_tables)} label more images alike (read with it)"
    elif (
        not forced and any(shape.label_position is not None for shape in shapes) and not _group_folders(shapes, tables)
    ):
        _folder_entry(proposal, shapes, images)
    else:
        raise _no_labels(name, tables, shapes, forced)
    _check_by_planning(proposal, listing, images)
    proposal.evidence += _dicom_tags(listing, images)
    proposal.evidence += [f"table {t.member} not used: {t.rejected}" for t in tables if t.rejected is not None]
    return proposal


def _dicom_tags(listing: Listing, images: list[str], sampled: int = 20) -> list[str]:
    """The subgroup tags the DICOM files carry (of the first few), which restructure writes to metadata.csv."""
    files = [image for image in images if member_suffix(image) in dicom.DICOM_SUFFIXES][:sampled]
    found: Counter[str] = Counter()
    for member in files:
        try:
            header = dicom.read_header(listing.read(member))
        except InvalidImage:
            continue
        found.update(tag for tag in dicom.METADATA_TAGS if str(header.get(tag) or "").strip())
    if not found:
        return []
    tags = ", ".join(f"{tag} ({count} of {len(files)})" for tag, count in found.items())
    return [f"DICOM headers carry {tags}: restructure writes them to metadata.csv, the report's subgroups"]


def _alike(readings: list[TableReading]) -> bool:
    """Tables that label different images the same way (CheXpert's train.csv and valid.csv): one table in parts."""

    def how(r: TableReading) -> tuple:
        return r.id_column, r.label_column, r.one_hot, r.group_column, r.split_column, set(r.rows[0])

    ids = [{row.get(r.id_column or "", "") for row in r.rows} for r in readings]
    disjoint = all(not (a & b) for index, a in enumerate(ids) for b in ids[index + 1 :])
    return disjoint and all(how(r) == how(readings[0]) for r in readings)


def _group_folders(shapes: list[inspection.FolderShape], tables: list[TableReading]) -> bool:
    """Whether the folders that look like labels hold a table's group ids (RSNA's train_images/<patient_id>/)."""
    groups = {row.get(t.group_column, "") for t in tables if t.group_column for row in t.rows}
    folders = {
        value for shape in shapes if shape.label_position is not None for value in shape.values[shape.label_position]
    }
    return bool(groups) and len(folders & groups) >= 0.5 * len(folders)


def _no_labels(name: str, tables: list[TableReading], shapes: list[inspection.FolderShape], forced: bool) -> Exception:
    ambiguous = [shape for shape in shapes if shape.ambiguous]
    if ambiguous and not forced:
        positions = ", ".join(
            "/".join("{?}" if p in shape.ambiguous else "*" for p in range(shape.depth)) for shape in ambiguous
        )
        return Ambiguous(
            f"{name}: more than one folder level could be the label ({positions}); edit the layout by hand"
        )
    seen = "; ".join(f"{reading.member}: {reading.rejected}" for reading in tables) or "no tables"
    hint = "name the label column with --label-column" if tables else "the images are not in label folders"
    error = Ambiguous if any("candidates" in (reading.rejected or "") for reading in tables) else PipelineError
    return error(f"{name}: found no labels: no label folders, and tables: {seen}; {hint}")


def _folder_entry(proposal: Proposal, shapes: list[inspection.FolderShape], images: list[str]) -> None:
    labelled = [shape for shape in shapes if shape.label_position is not None]
    proposal.entry["layout"] = [shape.pattern(with_label=True) for shape in labelled]
    splits = [
        value for shape in labelled if shape.split_position is not None for value in shape.values[shape.split_position]
    ]
    proposal.entry["split_map"] = inspection.split_map(splits)
    unlabelled = [shape for shape in shapes if shape.label_position is None]
    for shape in unlabelled:
        folder = shape.pattern(with_label=False)
        proposal.evidence.append(
            f"{shape.images} images in {folder} sit in no label folder and are left out; if the class images were "
            f"made from them (an augmented archive), set sources: {json.dumps(folder)}"
        )
    _group_regex(proposal, [image for image in images if image.count("/") in {shape.depth for shape in labelled}])
    proposal.entry["labels"] = None
    proposal.notes["labels"] = "labels are the {label} folder names"


def _table_entry(
    proposal: Proposal,
    reading: TableReading,
    tables: list[TableReading],
    shapes: list[inspection.FolderShape],
    listing: Listing,
    candidates: list[str],
    images: list[str],
    encoding: str,
) -> None:
    keys, file_names = inspection.image_keys(images)
    lists = {} if reading.split_column else inspection.split_lists(listing, candidates, keys, file_names, encoding)
    split_from_folders = not reading.split_column and not lists
    for shape in shapes:
        if not split_from_folders:
            shape.split_position = None
    proposal.entry["layout"] = [shape.pattern(with_label=False) for shape in shapes]
    if reading.split_column:
        values = inspection.parse_column(listing, reading.member, reading.split_column, encoding)
    elif lists:
        values = list(lists)
    else:
        values = [
            value
            for shape in shapes
            if shape.split_position is not None
            for value in shape.values[shape.split_position]
        ]
    proposal.entry["split_map"] = inspection.split_map(values)
    if lists:
        proposal.entry["split"] = {"strategy": "keep"}
        proposal.notes["split"] = (
            "the archive's official split lists are honoured: published scores are only comparable on its test "
            "split; val is carved out of train by group (split.ratios)"
        )
    joined = None if reading.group_column else _group_table(reading, tables)
    if joined is not None:
        reading.group_column = joined.group_column
        reading.metadata += [column for column in joined.metadata if column not in reading.metadata]
        joined.rejected = None
        proposal.evidence.append(
            f"table {joined.member} joined by {joined.id_column}: groups from {joined.group_column}"
        )
    if reading.group_column:
        proposal.entry["group_regex"] = None
        proposal.notes["group_regex"] = f"groups come from the table's column {reading.group_column}"
    else:  # a table naming images by path names their files by it: the patient may be a folder (CheXpert's)
        by_path = any("/" in row.get(reading.id_column or "", "") for row in reading.rows)
        _group_regex(proposal, [image.replace("/", "_") for image in images] if by_path else images)
    labels = {"table": reading.member, "id_column": reading.id_column}
    if joined is not None:
        labels["join"] = {"table": joined.member, "id_column": joined.id_column}
    if reading.per_image:
        labels["per_image"] = reading.per_image
    else:
        labels |= {"label_column": reading.label_column} if reading.label_column else {"one_hot": reading.one_hot}
    labels |= {"group_column": reading.group_column, "split_column": reading.split_column, "split_lists": lists}
    names: dict[str, str] = {}
    if reading.class_columns:  # keyword -> class from every row, not the sample: a keyword seen once has its class
        whole = parse_table(reading.member, listing.read(reading.member), encoding=encoding)
        multi, classes = reading.multi_label or {}, reading.class_columns
        names = inspection.keyword_classes(whole, reading.per_image, classes, multi["separator"], multi["none"])
        proposal.evidence.append(
            f"{len(names):,} keywords of the images' own columns mapped to the row's classes {', '.join(classes)} "
            "(the class set in at least half the rows where an image carries the keyword; others stay labels of "
            "their own): check labels.names"
        )
    labels |= {"names": names} | ({"metadata": reading.metadata} if reading.metadata else {})
    if reading.multi_label:
        labels["multi_label"] = reading.multi_label
        proposal.evidence.append(_multi_label_note(reading.multi_label))
    proposal.entry["labels"] = labels | ({"encoding": encoding} if encoding != "utf-8" else {})
    numbers = [row[reading.label_column] for row in reading.rows if row.get(reading.label_column or "")]
    if numbers and all(value.isdigit() for value in numbers):
        proposal.evidence.append("the labels are numbers: name them under labels.names (e.g. 0: no_dr)")
    proposal.notes["labels"] = (
        f"{reading.id_column} names the images; labels from "
        + (
            f"column {reading.label_column}"
            if reading.label_column
            else f"each image's own column ({', '.join(f'{i}: {c}' for i, c in reading.per_image.items())})"
            if reading.per_image
            else f"one-hot columns {', '.join(reading.one_hot)}"
        )
        + (f"; groups from {reading.group_column}" if reading.group_column else "")
        + (f"; subgroups in the report by {', '.join(reading.metadata)}" if reading.metadata else "")
    )


def _multi_label_note(multi: dict) -> str:
    joined = f"labels joined by {multi['separator']!r}; " if "separator" in multi else ""
    none = f"{', '.join(map(repr, multi['none']))} is the absence of every label, not one; " if multi["none"] else ""
    return (
        f"several labels per image: {joined}{none}uncertain cells (-1) {multi['uncertain']}, blank cells "
        f"{multi['blank']} (ignore | positive | negative; ignore: unknown, left out of the loss and that label's "
        "scores)"
    )


def _group_table(reading: TableReading, tables: list[TableReading]) -> TableReading | None:
    """Another table naming the same images that holds their groups (ISIC 2019's lesion_id in its metadata)."""
    for other in tables:
        if other is not reading and other.id_column and other.group_column and other.refusal is None:
            return other
    return None


def _group_regex(proposal: Proposal, files: list[str]) -> None:
    found = inspection.patient_pattern(files)
    proposal.entry["group_regex"] = found[0] if found else None
    proposal.notes["group_regex"] = (
        f"{found[1]} file names carry a patient id, {found[2]} patients" if found else "no patient ids in file names"
    )


def _check_by_planning(proposal: Proposal, listing: Listing, images: list[str]) -> None:
    """Fill the remaining keys, validate the entry, then plan the archive as restructure will, for the evidence."""
    entry = proposal.entry
    entry["extensions"] = sorted({member_suffix(image) for image in images})
    entry["ignore"] = [rule.pattern for rule in proposal.rules]
    entry |= {"sources": None, "synthetic": None, "split": entry.get("split", {})}
    proposal.entry = entry = {key: entry[key] for key in DATASET_KEYS}
    try:
        spec = DatasetSpec.model_validate({"name": proposal.name, **entry})
    except ValidationError as error:
        raise PipelineError(f"{proposal.name}: the entry written would be invalid: {error}") from None
    layout = Layout(spec)
    where = str(dataset_file(proposal.name))
    labels = None
    if spec.labels is not None:
        labels = build_labels(spec.labels, listing.read, layout.extensions, layout.canonical_split, where)
    plan = plan_members(listing.members, layout, spec, labels)
    proposal.evidence[:0] = _plan_evidence(plan, listing, entry["split"].get("strategy") == "keep")


def _label_counts(plan: Plan) -> Counter[tuple[str, str]]:
    """(split, label) -> images: of the label, or for a multi-label set those positive for it."""
    counts: Counter[tuple[str, str]] = Counter()
    for _, placement in plan.placed:
        labels = [name for name, value in placement.targets if value == 1] if placement.targets else [placement.label]
        counts.update((placement.source_split, label) for label in labels)
    return counts


def _values_evidence(plan: Plan) -> list[str]:
    """A multi-label set's values per label over the whole archive: positive, negative, unknown."""
    values: dict[str, Counter[str]] = {}
    for _, placement in plan.placed:
        for name, value in placement.targets:
            values.setdefault(name, Counter())["unknown" if value is None else "positive" if value else "negative"] += 1
    return [
        f"  {name}: {found['positive']:,} positive, {found['negative']:,} negative, {found['unknown']:,} unknown"
        for name, found in values.items()
    ]


def _plan_evidence(plan: Plan, listing: Listing, kept: bool) -> list[str]:
    counts = _label_counts(plan)
    groups = {placement.group for _, placement in plan.placed if placement.group}
    lines = [
        f"{len(plan.placed):,} labelled images of {len(listing.members):,} files"
        + (f", {len(groups):,} patients or groups" if groups else ""),
    ]
    for split in sorted({split for split, _ in counts}):
        per_label = ", ".join(f"{label} {count:,}" for (s, label), count in sorted(counts.items()) if s == split)
        lines.append(f"  {split}: {per_label}")
    left = {
        "images the label table gives no label (unlabelled, left out)": len(plan.unlabelled),
        "duplicate copies of an image already placed": len(plan.duplicate_copies),
        "outside the layout (not images, or no folder rule)": len(plan.unmatched),
        "label table rows with no label": plan.rows_without_label,
        "label table rows whose image is missing": len(plan.missing_images),
    }
    values = _values_evidence(plan)
    lines += ["values per label (positive counts above):", *values] if values else []
    lines += [f"{count:,} {what}" for what, count in left.items() if count]
    splits = Counter(placement.source_split for _, placement in plan.placed)
    if set(splits) - {NO_SPLIT}:
        shown = ", ".join(f"{split} ({count:,} images)" for split, count in sorted(splits.items()))
        fate = (
            "honoured (split: keep in this entry), val carved out of train"
            if kept
            else 'split.strategy pool (params.yaml\'s default) pools and re-splits them; split: {"strategy": "keep"} '
            "in this entry honours them"
        )
        lines.append(f"{ARCHIVE_SPLITS}{shown}: {fate}")
    return lines


# --------------------------------------------------------------------------- writing


def _scalar(value: object) -> str:
    """A YAML flow value: JSON is YAML, and JSON strings escape whatever an archive's names hold."""
    return json.dumps(value, ensure_ascii=False)


def _comment(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]", " ", text)[:300]


def render(proposal: Proposal, command: str) -> str:
    """The registry entry as YAML, each key with the evidence it was chosen on."""
    lines = [f"# {proposal.name}: written by `{_comment(command)}`; edit freely (docs/registry.md).", "#"]
    lines += [f"# {_comment(line)}" for line in proposal.evidence]
    for key, value in proposal.entry.items():
        note = f"  # {_comment(proposal.notes[key])}" if key in proposal.notes else ""
        if key == "ignore":
            lines.append("ignore:" + ("" if value else " []"))
            lines += [
                f"  - {_scalar(rule.pattern)}  # {rule.count:,} members: {_comment(rule.reason)}"
                for rule in proposal.rules
            ]
        elif key == "layout":
            lines.append("layout:")
            lines += [f"  - {_scalar(pattern)}" for pattern in value]
        elif isinstance(value, dict) and value:
            lines.append(f"{key}:{note}")
            lines += [f"  {_scalar(inner)}: {_scalar(item)}" for inner, item in value.items()]
        else:
            lines.append(f"{key}: {_scalar(value) if value != {} else '{}'}{note}")
    text = "\n".join(lines) + "\n"
    if yaml.safe_load(text) != proposal.entry:  # the comments and quoting must not change a value
        raise AssertionError(f"the rendered entry of {proposal.name} does not read back as written")
    return text


def entry_path(root: Path, name: str, force: bool, replace_default: str | None) -> Path:
    """datasets/NAME.yaml, once it is certain that it may be written: absent, or --force on an entry that the
    project does not ship with a stand-in (those need --replace-default NAME, by name)."""
    path = dataset_file(name, root)
    if not path.exists():
        return path
    if not force and replace_default != name:
        raise PipelineError(f"{path} exists; pass --force to replace it")
    shipped = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("synthetic") is not None
    if shipped and replace_default != name:
        raise PipelineError(
            f"{path} is a dataset the project ships (with a synthetic stand-in): --force does not replace it; "
            f"pass --replace-default {name} to replace exactly that entry"
        )
    return path


def registration(root: Path, name: str, local_path: Path | None, description: str) -> dict[Path, str]:
    """params.yaml with the dataset in its datasets (and its local archive in fetch.paths), and dvc.yaml with its
    model in artifacts, both keeping their comments: the new texts by file (unchanged files left out)."""
    editor = YAML()
    editor.preserve_quotes = True
    editor.width = 4096
    editor.representer.add_representer(  # `weights: null` stays null, not an empty value
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    params_path = root / PARAMS_FILE
    params = editor.load(params_path.read_text(encoding="utf-8"))
    if name not in params["datasets"]:
        params["datasets"].append(name)
    if local_path is not None:
        params["fetch"]["paths"][name] = str(local_path)
    buffer = StringIO()
    editor.dump(params, buffer)
    texts = {params_path: buffer.getvalue()}
    dvc_path = root / DVC_FILE
    text = dvc_path.read_text(encoding="utf-8")
    artifact = f"{name.replace('_', '-')}-classifier"
    if artifact in (yaml.safe_load(text).get("artifacts") or {}):
        return texts
    if not re.search(r"(?m)^artifacts:", text):
        text = text.rstrip("\n") + "\n\nartifacts:\n"
    lines = [f"  {artifact}:", f"    path: models/{name}", "    type: model", f"    desc: {_scalar(description)}"]
    text = text.rstrip("\n") + "\n" + "\n".join([*lines, f"    labels: [{name}]"]) + "\n"
    if (yaml.safe_load(text).get("artifacts") or {}).get(artifact, {}).get("path") != f"models/{name}":
        raise PipelineError(f"{dvc_path}: add the artifact {artifact} by hand (artifacts is not the last section)")
    return texts | {dvc_path: text}


def write_together(texts: dict[Path, str]) -> None:
    """Every file in `texts` replaced, all or none (medimage/atomic.py: atomic_files)."""
    with atomic_files(list(texts)) as temporaries:
        for temporary, text in zip(temporaries, texts.values(), strict=True):
            temporary.write_text(text, encoding="utf-8")
