"""How good is a split: counts, leakage across splits, distribution shift and metadata shortcuts.

- group_overlap: patients with images in more than one split.
- duplicate_overlap: identical images (same sha256) in more than one split.
- copy_overlap: groups of copies (rotated, flipped, zoomed, re-encoded... images found by split.near_duplicates,
  all pairs joined) with members in more than one split; None when the search is off.
- shift_auc: how well a logistic regression on coarse looks and histograms tells train images from test
  images, cross-validated. 0.5 means the splits look alike; near 1 means test was acquired differently.
- shortcut_auc: how well a random forest on width, height, channels and file size alone predicts the label
  (trained on train, scored on test; cross-validated when there is no train/test pair). High means a model
  can score well without looking at the image. For a multi-label set the label is "any finding or none".
- counts per split and label; for a multi-label set the positives of each label, its `prevalence` per split
  (positives over the images whose value is known), and the `images` per split.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from medimage.manifest import InterimRow
from medimage.reporting.scores import binary_roc_auc, macro_roc_auc
from medimage.settings.split import SplitSettings
from medimage.splitting.assignment import UnionFind
from medimage.splitting.features import look_features, read_grey

AUDIT_FOLDS = 5  # cross-validation folds of the shift and shortcut models
MIN_PER_SIDE = AUDIT_FOLDS  # images each side needs (stratified folds need one per fold and side)
# the audit's models: small and strongly regularised, for a few hundred images; not tuned, only a probe
SHIFT_MODEL = {"C": 0.1, "max_iter": 2000}  # logistic regression on coarse looks and histograms
SHORTCUT_FOREST = {"n_estimators": 100, "min_samples_leaf": 3}  # random forest on width, height, channels, bytes
AUDIT_DECODE_SIZE = 64  # decode at least this many pixels across for the shift features

# The audit's scores, each for the archive's splits ('original') and the new ones: split.json's declared metrics.
AUDIT_KEYS = ("group_overlap", "duplicate_overlap", "copy_overlap", "shift_auc", "shortcut_auc")


def split_counts(splits: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for split, label in zip(splits, labels, strict=True):
        counts[split][label] += 1
    return {split: dict(sorted(counts[split].items())) for split in sorted(counts)}


def label_counts(rows: Sequence[InterimRow], splits: Sequence[str]) -> tuple[dict, dict]:
    """A multi-label set's positives per split and label, and each label's prevalence there (of known values)."""
    positives: dict[str, Counter[str]] = defaultdict(Counter)
    known: dict[str, Counter[str]] = defaultdict(Counter)
    for row, split in zip(rows, splits, strict=True):
        for name, value in row.targets:
            positives[split][name] += value == 1
            known[split][name] += value is not None
    names = [name for name, _ in rows[0].targets]
    counts = {split: {name: positives[split][name] for name in names} for split in sorted(known)}
    prevalence = {
        split: {
            name: round(positives[split][name] / known[split][name], 4) if known[split][name] else None
            for name in names
        }
        for split in sorted(known)
    }
    return counts, prevalence


def overlap(splits: Sequence[str], keys: Sequence[str]) -> int:
    """How many distinct non-empty keys (patients, hashes) occur in more than one split."""
    seen: dict[str, set[str]] = defaultdict(set)
    for split, key in zip(splits, keys, strict=True):
        if key:
            seen[key].add(split)
    return sum(len(found) > 1 for found in seen.values())


def sample_indices(splits: Sequence[str], names: Sequence[str], per_split: int, seed: int) -> np.ndarray:
    """Up to `per_split` indices from each named split, chosen with the seed, in ascending order."""
    rng = np.random.default_rng(seed)
    chosen = []
    for name in names:
        members = np.flatnonzero(np.asarray(splits) == name)
        chosen.append(members if len(members) <= per_split else rng.choice(members, per_split, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)


def shift_auc(features: np.ndarray, is_test: np.ndarray, seed: int) -> float | None:
    """Cross-validated ROC AUC of telling test from train by image content; None with too few images."""
    if min(is_test.sum(), (~is_test).sum()) < MIN_PER_SIDE:
        return None
    model = make_pipeline(StandardScaler(), LogisticRegression(**SHIFT_MODEL))
    folds = StratifiedKFold(n_splits=AUDIT_FOLDS, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, features, is_test, cv=folds, method="predict_proba")[:, 1]
    return round(binary_roc_auc(is_test, scores), 4)


def _auc(truth: np.ndarray, probabilities: np.ndarray, classes: np.ndarray) -> float | None:
    """macro_roc_auc for string labels, given the classes in probability-column order."""
    return macro_roc_auc(np.searchsorted(classes, truth), probabilities)


def shortcut_auc(
    metadata: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int
) -> float | None:
    """Macro one-vs-rest ROC AUC of predicting the label from metadata alone; None where undefined."""
    forest = RandomForestClassifier(**SHORTCUT_FOREST, random_state=seed, n_jobs=1)
    if train.sum() >= MIN_PER_SIDE and test.sum() >= MIN_PER_SIDE and len(np.unique(labels[train])) > 1:
        forest.fit(metadata[train], labels[train])
        auc = _auc(labels[test], forest.predict_proba(metadata[test]), forest.classes_)
    else:
        smallest = min(Counter(labels.tolist()).values())
        if smallest < 2 or len(set(labels.tolist())) < 2:
            return None
        folds = StratifiedKFold(n_splits=min(AUDIT_FOLDS, smallest), shuffle=True, random_state=seed)
        probabilities = cross_val_predict(forest, metadata, labels, cv=folds, method="predict_proba")
        auc = _auc(labels, probabilities, np.unique(labels))
    return None if auc is None else round(auc, 4)


def grey_images(rows: Sequence[InterimRow], indices: np.ndarray, folder: Path, what: str) -> dict[int, np.ndarray]:
    """The chosen rows' images, grey, decoded at reduced size, by row index."""
    chosen = tqdm(indices.tolist(), desc=what, unit="img", disable=None, leave=False)
    return {
        index: read_grey(folder / rows[index].path, rows[index].width, rows[index].height, AUDIT_DECODE_SIZE)
        for index in chosen
    }


def copy_groups(count: int, pairs: Sequence[tuple[int, int, int]]) -> list[str]:
    """A group key per item from all copy pairs joined (no size bound), "" for items without a copy."""
    groups = UnionFind(count)
    for first, second, _ in pairs:
        groups.union(first, second)
    paired = {index for pair in pairs for index in pair[:2]}
    return [str(groups.find(index)) if index in paired else "" for index in range(count)]


def audit_splits(
    rows: Sequence[InterimRow],
    splits: list[str],
    folder: Path,
    settings: SplitSettings,
    copies: Sequence[str] | None = None,
) -> dict:
    """The audit metrics, for the archive's own splits ('original') and the new ones ('new').

    `copies`: a copy-group key per row ("" for none), or None where no search for copies ran.
    """
    multi_label = bool(rows and rows[0].targets)
    labels = np.array(
        ["finding" if row.label else "none" for row in rows] if multi_label else [row.label for row in rows]
    )
    original = [row.source_split for row in rows]
    metadata = np.array([[float(row.width), float(row.height), float(row.channels), float(row.bytes)] for row in rows])
    sampled = {
        name: sample_indices(assignment, ("train", "test"), settings.audit_images, settings.seed)
        for name, assignment in (("original", original), ("new", splits))
    }
    images = grey_images(rows, np.union1d(sampled["original"], sampled["new"]), folder, "audit features")
    features = {index: look_features(image) for index, image in images.items()}
    result: dict[str, dict] = {key: {} for key in ("counts", *AUDIT_KEYS)}
    for name, assignment in (("original", original), ("new", splits)):
        chosen = sampled[name]
        side = np.array(assignment)[chosen]
        in_train, in_test = np.array(assignment) == "train", np.array(assignment) == "test"
        if multi_label:  # counts are positives: the images per split are counted beside them
            result["counts"][name], result.setdefault("prevalence", {})[name] = label_counts(rows, assignment)
            result.setdefault("images", {})[name] = dict(sorted(Counter(assignment).items()))
        else:
            result["counts"][name] = split_counts(assignment, labels.tolist())
        result["group_overlap"][name] = overlap(assignment, [row.group for row in rows])
        result["duplicate_overlap"][name] = overlap(assignment, [row.sha256 for row in rows])
        result["copy_overlap"][name] = None if copies is None else overlap(assignment, copies)
        matrix = np.array([features[index] for index in chosen]) if len(chosen) else np.zeros((0, 1))
        result["shift_auc"][name] = shift_auc(matrix, side == "test", settings.seed)
        result["shortcut_auc"][name] = shortcut_auc(metadata, labels, in_train, in_test, settings.seed)
    return result


def audit_table(name: str, settings: SplitSettings, metrics: dict) -> str:
    """The audit as a small text table, original against new, with the new split's counts."""

    def cell(value: object) -> str:
        return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = [
        f"split audit {name} (strategy {settings.strategy}, seed {settings.seed})",
        f"  {'':<18}{'original':>10}{'new':>10}",
    ]
    for key in AUDIT_KEYS:
        lines.append(f"  {key:<18}{cell(metrics[key]['original']):>10}{cell(metrics[key]['new']):>10}")
    for split, labels in metrics["counts"]["new"].items():
        lines.append(f"  {split:<6}" + "  ".join(f"{label} {count}" for label, count in labels.items()))
    return "\n".join(lines)
