"""Re-split one dataset: assign every interim image a split, write the manifest, lay out the view, audit the result.

The processed manifest (the interim rows with `split` and `interim_path`) is what DVC tracks; the split folders
are a view of hardlinked interim files beside it (`medimage.splitting.view`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from medimage import manifest
from medimage.manifest import InterimRow, ProcessedRow
from medimage.params import SplitSettings
from medimage.reporting.sheets import contact_sheet, write_png
from medimage.splitting import view
from medimage.splitting.assignment import Item, assign_splits
from medimage.splitting.audit import audit_splits, grey_images
from medimage.splitting.features import dhash, near_duplicate_pairs
from medimage.splitting.materialising import LinkReport, target_paths

log = logging.getLogger(__name__)


def near_pairs_of(rows: list[InterimRow], source: Path, settings: SplitSettings) -> list[tuple[int, int]]:
    """Row index pairs of perceptually near-identical images (dHash), when the settings ask for them."""
    if not (settings.near_duplicates and settings.strategy == "pool"):
        return []
    images = grey_images(rows, np.arange(len(rows)), source, "dHash")
    hashes = np.array([dhash(images[i]) for i in range(len(rows))], dtype=np.uint64)
    return near_duplicate_pairs(hashes, settings.near_duplicate_distance)


def write_split(
    settings: SplitSettings, dataset: str, source: Path, destination: Path
) -> tuple[list[InterimRow], list[ProcessedRow], list[tuple[int, int]], LinkReport]:
    """The split itself: assign every interim row a split, lay out the view in `destination`, then write its manifest.

    Returns the interim rows, the processed rows (sorted by their new path), the near-duplicate pairs used and
    how files were placed.
    """
    rows = manifest.read_interim(source)
    items = [Item(row.path, row.label, row.source_split, row.sha256, row.group) for row in rows]
    near_pairs = near_pairs_of(rows, source, settings)
    splits = assign_splits(items, settings, dataset, near_pairs)  # invalid settings stop here, before any output

    targets = target_paths(
        splits, [row.label for row in rows], [row.path for row in rows], [row.source_split for row in rows]
    )
    processed = [
        ProcessedRow(**{**asdict(row), "path": target}, interim_path=row.path, split=split)
        for row, target, split in zip(rows, targets, splits, strict=True)
    ]
    processed.sort(key=lambda row: row.path)
    destination.mkdir(parents=True, exist_ok=True)
    report = view.build(destination, source, processed, link=settings.link == "hardlink")
    manifest.write_manifest(destination, processed, ProcessedRow)  # last: a manifest means a finished split
    return rows, processed, near_pairs, report


def split_dataset(dataset: str, settings: SplitSettings, source: Path, destination: Path, sheet: Path) -> dict:
    """Split, draw the contact sheet, and return the audit metrics (archive splits against new ones)."""
    rows, processed, near_pairs, report = write_split(settings, dataset, source, destination)
    write_png(sheet, contact_sheet(processed, destination))

    splits_by_path = {row.interim_path: row.split for row in processed}
    metrics = audit_splits(rows, [splits_by_path[row.path] for row in rows], source, settings)
    metrics["near_duplicate_pairs"] = len(near_pairs)
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
