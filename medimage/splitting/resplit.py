"""Re-split one dataset: assign every interim image a split, write the manifest, lay out the view, audit the result.

The processed manifest (the interim rows with `split` and `interim_path`) is what DVC tracks; the split folders
are a view of hardlinked interim files beside it (`medimage.splitting.view`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from medimage import manifest
from medimage.manifest import InterimRow, ProcessedRow
from medimage.reporting.sheets import contact_sheet, write_png
from medimage.settings.split import SplitSettings
from medimage.splitting import copy_cache, matching, view
from medimage.splitting.assignment import OversizedGroup, assign_splits
from medimage.splitting.audit import audit_splits, copy_groups, grey_images
from medimage.splitting.features import dhash, dhash_copy_pairs, read_grey
from medimage.splitting.materialising import LinkReport, target_paths

log = logging.getLogger(__name__)
OVERSIZED_EXAMPLES = 10  # largest first, in split_report.json


def copies_of(
    rows: list[InterimRow], interim: Path, settings: SplitSettings, cache: Path | None = None
) -> matching.Copies:
    """Row pairs (i, j, strength) where one image is a copy of the other, or both copies of one original shipped
    with the archive (data/interim/<ds>/originals), by the method the settings name. Keypoints and pairs are kept
    in `cache` (copy_cache) where one is given."""
    if settings.near_duplicates == "off":
        return matching.Copies([], None)
    if settings.near_duplicates == "dhash":
        images = grey_images(rows, np.arange(len(rows)), interim, "dHash")
        hashes = np.array([dhash(images[i]) for i in range(len(rows))], dtype=np.uint64)
        return matching.Copies([(i, j, 0) for i, j in dhash_copy_pairs(hashes, settings.near_duplicate_distance)], None)

    def features(of: list[InterimRow], size: int, count: int, what: str) -> list[matching.Features]:
        def compute(indices: list[int]) -> list[matching.Features]:
            def grey(position: int) -> np.ndarray:
                row = of[indices[position]]
                return read_grey(interim / row.path, row.width, row.height, size)

            return matching.features_of(len(indices), grey, size, count, what)

        return copy_cache.cached_features(cache, [row.sha256 for row in of], size, count, compute)

    originals = manifest.read_originals(interim)
    digests = [row.sha256 for row in rows] + ["originals"] + [row.sha256 for row in originals]

    def search() -> matching.Copies:
        images = features(rows, matching.QUERY_SIZE, matching.QUERY_FEATURES, "keypoints")
        references = features(originals, matching.REFERENCE_SIZE, matching.REFERENCE_FEATURES, "originals")
        return matching.copies_among(images, references, settings.near_duplicate_inliers)

    return copy_cache.cached_copies(cache, [f"inliers {settings.near_duplicate_inliers}", *digests], search)


@dataclass(frozen=True)
class SplitResult:
    rows: list[InterimRow]  # the interim rows, in manifest order
    processed: list[ProcessedRow]  # sorted by their new path
    copies: matching.Copies  # pairs (i, j, strength) into rows
    oversized: list[OversizedGroup]  # groups larger than one fold's share of their label, placed whole
    labels_missing: dict[str, list[str]]  # multi-label sets: split -> labels too rare to reach it
    report: LinkReport  # how the view's files were placed


def write_split(
    settings: SplitSettings, dataset: str, interim: Path, destination: Path, cache: Path | None = None
) -> SplitResult:
    """The split itself: give every interim row a split, lay out the view in `destination`, then write its manifest."""
    rows = manifest.read_interim(interim)
    copies = copies_of(rows, interim, settings, cache)
    # invalid settings stop here, before any output
    assignment = assign_splits(rows, settings, dataset, copies.pairs)
    splits = assignment.splits

    folders = ["" if row.targets else row.label for row in rows]  # a multi-label image has no label folder
    targets = target_paths(splits, folders, [row.path for row in rows], [row.source_split for row in rows])
    processed = [
        ProcessedRow(**{**asdict(row), "path": target}, interim_path=row.path, split=split)
        for row, target, split in zip(rows, targets, splits, strict=True)
    ]
    processed.sort(key=lambda row: row.path)
    destination.mkdir(parents=True, exist_ok=True)
    report = view.build(destination, interim, processed, link=settings.link == "hardlink")
    manifest.write_manifest(destination, processed, ProcessedRow)  # last: a manifest means a finished split
    return SplitResult(rows, processed, copies, assignment.oversized, assignment.labels_missing, report)


def split_dataset(
    dataset: str, settings: SplitSettings, interim: Path, destination: Path, sheet: Path, cache: Path | None = None
) -> dict:
    """Split, draw the contact sheet, and return the audit metrics (archive splits against new ones)."""
    result = write_split(settings, dataset, interim, destination, cache)
    write_png(sheet, contact_sheet(result.processed, destination))

    splits_by_path = {row.interim_path: row.split for row in result.processed}
    rows = result.rows
    groups = copy_groups(len(rows), result.copies.pairs) if settings.near_duplicates != "off" else None
    metrics = audit_splits(rows, [splits_by_path[row.path] for row in rows], interim, settings, groups)
    metrics["near_duplicate_pairs"] = len(result.copies.pairs)
    metrics["matched_originals"] = result.copies.matched
    metrics["oversized_groups"] = len(result.oversized)
    metrics["oversized_group_examples"] = [asdict(group) for group in result.oversized[:OVERSIZED_EXAMPLES]]
    if result.oversized:
        largest = result.oversized[0]
        log.warning(
            "%d groups of one patient or of copies hold more of a label than one fold of the split (largest: %d "
            "images, %s, in %s); each stays whole in one split, so the ratios of those labels move "
            "(split_report.json: oversized_group_examples)",
            len(result.oversized),
            largest.images,
            largest.example,
            largest.split,
        )
    if manifest.is_multi_label(rows):
        metrics["labels_missing"] = result.labels_missing
    for split, names in result.labels_missing.items():
        log.warning(
            "split %s holds no positive image of %s: too few patients with that label for every split to have one "
            "(split_report.json: labels_missing)",
            split,
            ", ".join(names),
        )
    report = result.report
    metrics["files"] = {"linked": report.linked, "copied": report.copied, "renamed": len(report.renamed)}
    metrics["shortcut_warning"] = bool((metrics["shortcut_auc"]["new"] or 0) >= settings.shortcut_warning)
    if metrics["shortcut_warning"]:
        log.warning(
            "image metadata alone (width, height, channels, file size) predicts the label with ROC AUC %.2f "
            "(split.shortcut_warning %s); a model can score well without looking at the images",
            metrics["shortcut_auc"]["new"],
            settings.shortcut_warning,
        )
    return metrics
