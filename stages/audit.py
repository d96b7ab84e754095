"""How good is a split: counts, leakage across splits, distribution shift and metadata shortcuts.

- group_overlap: patients with images in more than one split.
- duplicate_overlap: identical images (same sha256) in more than one split.
- shift_auc: how well a logistic regression on thumbnails and histograms tells train images from test
  images, cross-validated. 0.5 means the splits look alike; near 1 means test was acquired differently.
- shortcut_auc: how well a random forest on width, height, channels and file size alone predicts the label
  (trained on train, scored on test; cross-validated when there is no train/test pair). High means a model
  can score well without looking at the image.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MIN_PER_SIDE = 5


def split_counts(splits: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for split, label in zip(splits, labels, strict=True):
        counts[split][label] += 1
    return {split: dict(sorted(counts[split].items())) for split in sorted(counts)}


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
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    folds = StratifiedKFold(n_splits=MIN_PER_SIDE, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, features, is_test, cv=folds, method="predict_proba")[:, 1]
    return round(float(roc_auc_score(is_test, scores)), 4)


def _auc(truth: np.ndarray, probabilities: np.ndarray, classes: np.ndarray) -> float | None:
    present = np.unique(truth)
    if len(present) < 2:
        return None
    if len(classes) == 2:
        return float(roc_auc_score(truth == classes[1], probabilities[:, 1]))
    columns = np.searchsorted(classes, present)
    scores = probabilities[:, columns] / np.clip(probabilities[:, columns].sum(axis=1, keepdims=True), 1e-12, None)
    if len(present) == 2:
        return float(roc_auc_score(truth == present[1], scores[:, 1]))
    return float(roc_auc_score(truth, scores, multi_class="ovr", labels=present))


def shortcut_auc(metadata: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int) -> float | None:
    """Macro one-vs-rest ROC AUC of predicting the label from metadata alone; None where undefined."""
    forest = RandomForestClassifier(n_estimators=100, min_samples_leaf=3, random_state=seed, n_jobs=1)
    if train.sum() >= MIN_PER_SIDE and test.sum() >= MIN_PER_SIDE and len(np.unique(labels[train])) > 1:
        forest.fit(metadata[train], labels[train])
        auc = _auc(labels[test], forest.predict_proba(metadata[test]), forest.classes_)
    else:
        smallest = min(Counter(labels.tolist()).values())
        if smallest < 2 or len(set(labels.tolist())) < 2:
            return None
        folds = StratifiedKFold(n_splits=min(MIN_PER_SIDE, smallest), shuffle=True, random_state=seed)
        probabilities = cross_val_predict(forest, metadata, labels, cv=folds, method="predict_proba")
        auc = _auc(labels, probabilities, np.unique(labels))
    return None if auc is None else round(auc, 4)
