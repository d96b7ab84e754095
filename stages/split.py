"""split@<ds>: re-split data/interim/<ds> into data/processed/<ds>/{train,val,test}/<label>/ and audit the result.

Files are hardlinked from the interim folder (no image bytes copied where the file system allows);
manifest.csv gains a `split` column. metrics/<ds>/split.json compares the archive's own splits with the new
ones, and plots/<ds>/split_samples.png shows a few images per split and label.

    python -m stages.split chest_xray
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from stages import audit
from stages.atomic import atomic_dir, atomic_file, write_json
from stages.cli import run_stage
from stages.config import DatasetSpec, Params, SplitSettings, split_settings
from stages.errors import PipelineError
from stages.features import dhash, near_duplicate_pairs, read_grey, thumbnail_features
from stages.materialise import LinkReport, materialise, target_paths
from stages.paths import INTERIM_DIR, MANIFEST, PLOTS_DIR, PROCESSED_DIR, metrics_file
from stages.sheets import contact_sheet
from stages.splitting import Item, assign_splits

FEATURE_SIZE = 64  # decode at least this many pixels across for the audit features


def read_manifest(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise PipelineError(f"{path} not found: run restructure first (dvc repro restructure@<dataset>)")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def grey_images(rows: list[dict[str, str]], indices: np.ndarray, folder: Path, what: str) -> dict[int, np.ndarray]:
    return {
        index: read_grey(folder / rows[index]["path"], int(rows[index]["width"]), int(rows[index]["height"]), FEATURE_SIZE)
        for index in tqdm(indices.tolist(), desc=what, unit="img", disable=None, leave=False)
    }


def audit_splits(rows: list[dict[str, str]], splits: list[str], folder: Path, settings: SplitSettings) -> dict:
    """The audit metrics, for the archive's own splits ('original') and the new ones ('new')."""
    labels = np.array([row["label"] for row in rows])
    original = [row["source_split"] for row in rows]
    metadata = np.array([[float(row["width"]), float(row["height"]), float(row["channels"]), float(row["bytes"])] for row in rows])
    sampled = {
        name: audit.sample_indices(assignment, ("train", "test"), settings.audit_images, settings.seed)
        for name, assignment in (("original", original), ("new", splits))
    }
    images = grey_images(rows, np.union1d(sampled["original"], sampled["new"]), folder, "audit features")
    features = {index: thumbnail_features(image) for index, image in images.items()}
    result: dict[str, dict] = {key: {} for key in ("counts", "group_overlap", "duplicate_overlap", "shift_auc", "shortcut_auc")}
    for name, assignment in (("original", original), ("new", splits)):
        chosen = sampled[name]
        side = np.array(assignment)[chosen]
        result["counts"][name] = audit.split_counts(assignment, labels.tolist())
        result["group_overlap"][name] = audit.overlap(assignment, [row["group"] for row in rows])
        result["duplicate_overlap"][name] = audit.overlap(assignment, [row["sha256"] for row in rows])
        matrix = np.array([features[index] for index in chosen]) if len(chosen) else np.zeros((0, 1))
        result["shift_auc"][name] = audit.shift_auc(matrix, side == "test", settings.seed)
        result["shortcut_auc"][name] = audit.shortcut_auc(metadata, labels, np.array(assignment) == "train", np.array(assignment) == "test", settings.seed)
    return result


def write_split(settings: SplitSettings, dataset: str, source: Path, destination: Path) -> tuple[list[dict[str, str]], list[dict[str, str]], list[tuple[int, int]], LinkReport]:
    """The split itself: assign every interim row a split and materialise `destination` (atomically) with its manifest.

    Returns the interim rows, the processed rows (sorted by their new path), the near-duplicate pairs used and
    how files were placed.
    """
    rows = read_manifest(source / MANIFEST)
    items = [Item(row["path"], row["label"], row["source_split"], row["sha256"], row["group"]) for row in rows]
    near_pairs: list[tuple[int, int]] = []
    if settings.near_duplicates and settings.strategy == "pool":
        images = grey_images(rows, np.arange(len(rows)), source, "dHash")
        near_pairs = near_duplicate_pairs(np.array([dhash(images[i]) for i in range(len(rows))], dtype=np.uint64), settings.near_duplicate_distance)
    splits = assign_splits(items, settings, dataset, near_pairs)  # invalid settings stop here, before any output

    targets = target_paths(splits, [row["label"] for row in rows], [row["path"] for row in rows], [row["source_split"] for row in rows])
    processed = [{**row, "path": target, "interim_path": row["path"], "split": split} for row, target, split in zip(rows, targets, splits, strict=True)]
    processed.sort(key=lambda row: row["path"])
    with atomic_dir(destination) as staging:
        report = materialise(
            [source / row["interim_path"] for row in processed], [row["path"] for row in processed], staging, link=settings.link == "hardlink"
        )
        with (staging / MANIFEST).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(processed[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(processed)
    return rows, processed, near_pairs, report


def split_dataset(dataset: DatasetSpec, settings: SplitSettings, source: Path, destination: Path, sheet: Path) -> dict:
    rows, processed, near_pairs, report = write_split(settings, dataset.name, source, destination)
    with atomic_file(sheet) as temporary:
        temporary.write_bytes(cv2.imencode(".png", contact_sheet(processed, destination))[1].tobytes())

    splits_by_path = {row["interim_path"]: row["split"] for row in processed}
    metrics = audit_splits(rows, [splits_by_path[row["path"]] for row in rows], source, settings)
    metrics["near_duplicate_pairs"] = len(near_pairs)
    metrics["files"] = {"linked": report.linked, "copied": report.copied, "renamed": len(report.renamed)}
    metrics["shortcut_warning"] = bool((metrics["shortcut_auc"]["new"] or 0) >= settings.shortcut_warning)
    return metrics


def audit_table(name: str, settings: SplitSettings, metrics: dict) -> str:
    def cell(value: object) -> str:
        return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = [f"split audit {name} (strategy {settings.strategy}, seed {settings.seed})", f"  {'':<18}{'original':>10}{'new':>10}"]
    for key in ("group_overlap", "duplicate_overlap", "shift_auc", "shortcut_auc"):
        lines.append(f"  {key:<18}{cell(metrics[key]['original']):>10}{cell(metrics[key]['new']):>10}")
    for split, labels in metrics["counts"]["new"].items():
        lines.append(f"  {split:<6}" + "  ".join(f"{label} {count}" for label, count in labels.items()))
    return "\n".join(lines)


def main(params: Params, dataset: DatasetSpec) -> None:
    settings = split_settings(params, dataset)
    metrics = split_dataset(
        dataset, settings, INTERIM_DIR / dataset.name, PROCESSED_DIR / dataset.name, PLOTS_DIR / dataset.name / "split_samples.png"
    )
    write_json(metrics_file(dataset.name, "split.json"), metrics)
    print(audit_table(dataset.name, settings, metrics))
    if metrics["shortcut_warning"]:
        print(
            f"split: warning: {dataset.name}: image metadata alone (width, height, channels, file size) predicts the label with "
            f"ROC AUC {metrics['shortcut_auc']['new']:.2f} (split.shortcut_warning {settings.shortcut_warning}); "
            "a model can score well without looking at the images",
            file=sys.stderr,
        )


if __name__ == "__main__":
    run_stage("split", main, __doc__)
