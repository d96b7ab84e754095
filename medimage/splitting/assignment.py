"""Decide which split each image goes to: keep or merge the archive's splits, or pool and re-split without leakage.

Pooling cuts the data into FOLDS stratified, grouped folds (balanced_folds: per label, whole groups dealt to
the emptiest fold; scikit-learn's StratifiedGroupKFold where a group holds several labels) and gives each
split round(ratio x FOLDS) of them, test first, then val, train taking the rest: 20 folds make every ratio a
multiple of 5 %, three-way ratios included. Where the rarest label has fewer than 20 independent groups of
images, there are that many folds instead (coarser ratios, but every fold can hold every label). Groups are
the connected components of "same patient", "same bytes" and (with split.near_duplicates) "a copy of", so
none of them ever straddles two splits; a group larger than a fold's share of its label is placed whole and
reported. Input order does not matter: rows are sorted by path first.

A multi-label set (several labels per image) is pooled by iterative stratification of its groups (after
Sechidis et al. 2011, "On the stratification of multi-label data", with patients in place of samples): the
label with the fewest positives left goes first, each group holding it to the split that most lacks that label,
so that every label's prevalence is as even across splits as whole groups allow; groups with no positive label
fill the splits to their ratios. A label too rare to reach every split is reported, not refused.
"""

from __future__ import annotations

import heapq
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from medimage.errors import PipelineError
from medimage.manifest import InterimRow
from medimage.settings.files import dataset_file
from medimage.settings.split import SPLIT_NAMES, SplitSettings

FOLDS = 20
# StratifiedGroupKFold (needed only when a group holds several labels) costs O(groups x folds) in Python (57 s
# for 20,000 one-image groups); past this many groups, single-label groups are pooled, at random (seeded)
# within their label, into buckets.
MAX_GROUPS = 800


class UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, index: int) -> int:
        while self.parent[index] != index:
            self.parent[index] = self.parent[self.parent[index]]
            index = self.parent[index]
        return index

    def union(self, first: int, second: int) -> None:
        roots = sorted((self.find(first), self.find(second)))
        if roots[0] != roots[1]:
            self.parent[roots[1]] = roots[0]


def leakage_components(
    rows: Sequence[InterimRow], by_group: bool, copy_pairs: Sequence[tuple[int, int, int]] = ()
) -> np.ndarray:
    """Component per row: rows sharing bytes, a group (if by_group) or a verified copy pair share one.

    Every pair joins, however large the group grows: a pair is verified evidence that two images are one (a copy,
    one scan twice, overlapping views of one smear), and a chain of such pairs is one source. Capping groups
    broke true groups and put copies in two splits; a group too large for the ratios is placed whole
    and reported (`oversized_groups`).
    """
    components = UnionFind(len(rows))
    first_seen: dict[tuple[str, str], int] = {}
    for index, row in enumerate(rows):
        keys = [("sha256", row.sha256)] + ([("group", row.group)] if by_group and row.group else [])
        for key in keys:
            if key in first_seen:
                components.union(first_seen[key], index)
            else:
                first_seen[key] = index
    for first, second, _ in copy_pairs:
        components.union(first, second)
    return np.array([components.find(index) for index in range(len(rows))])


def folds_per_split(ratios: dict[str, float], folds: int) -> dict[str, int]:
    """How many of `folds` folds each split gets: at least one each, train the rest."""
    counts = {name: max(1, round(ratios[name] * folds)) for name in ("test", "val") if name in ratios}
    counts["train"] = folds - sum(counts.values())
    if counts["train"] < 1:
        raise PipelineError(f"split.ratios {ratios} leaves no fold for train with only {folds} groups of images")
    return counts


def coarsen(labels: Sequence[str], components: np.ndarray, seed: int, limit: int = MAX_GROUPS) -> np.ndarray:
    """Fewer, larger groups: single-label groups are bucketed with random others of the same label.

    Buckets only ever join groups that hold the same one label, so stratification and leakage-freedom
    are unchanged; the split just moves in slightly larger steps.
    """
    ids = sorted(set(components.tolist()))
    if len(ids) <= limit:
        return components
    factor = -(-len(ids) // limit)
    labels_of: dict[int, set[str]] = {}
    for label, component in zip(labels, components.tolist(), strict=True):
        labels_of.setdefault(component, set()).add(label)
    rng = np.random.default_rng(seed)
    bucket_of: dict[int, int] = {}
    for label in sorted(set(labels)):
        pure = np.array([component for component in ids if labels_of[component] == {label}])
        shuffled = rng.permutation(pure)
        for start in range(0, len(shuffled), factor):
            bucket = shuffled[start : start + factor]
            for component in bucket.tolist():
                bucket_of[component] = int(bucket.min())
    return np.array([bucket_of.get(component, component) for component in components.tolist()])


def balanced_folds(labels: Sequence[str], components: np.ndarray, folds: int, seed: int) -> np.ndarray | None:
    """Fold of each row when every group holds one label (else None): per label, groups in random order, largest
    first, each to the fold holding fewest images of that label so far (fold numbers shuffled per label).

    Stratified and grouped like StratifiedGroupKFold, balanced at least as well, in O(n log n).
    """
    label_of: dict[int, str] = {}
    for label, component in zip(labels, components.tolist(), strict=True):
        if label_of.setdefault(component, label) != label:
            return None
    sizes = Counter(components.tolist())
    rng = np.random.default_rng(seed)
    fold_of_group: dict[int, int] = {}
    for label in sorted(set(labels)):
        groups = [group for group in sorted(sizes) if label_of[group] == label]
        groups = sorted((groups[index] for index in rng.permutation(len(groups))), key=lambda group: -sizes[group])
        heap = [(0, position, int(fold)) for position, fold in enumerate(rng.permutation(folds))]
        for group in groups:
            total, position, fold = heapq.heappop(heap)
            fold_of_group[group] = fold
            heapq.heappush(heap, (total + sizes[group], position, fold))
    return np.array([fold_of_group[component] for component in components.tolist()])


def sklearn_folds(labels: Sequence[str], components: np.ndarray, folds: int, settings: SplitSettings) -> np.ndarray:
    """Fold of each row by scikit-learn, for groups that hold several labels."""
    components = coarsen(labels, components, settings.seed)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=settings.seed)
    fold_of = np.empty(len(labels), dtype=int)
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="The least populated class"
        )  # small classes: checked afterwards instead
        for fold, (_, members) in enumerate(splitter.split(np.zeros(len(labels)), np.asarray(labels), components)):
            fold_of[members] = fold
    return fold_of


def fold_count(labels: Sequence[str], components: np.ndarray, settings: SplitSettings) -> int:
    """FOLDS, or fewer where the rarest label has fewer independent groups (so that each fold can hold it)."""
    groups_per_label: dict[str, set[int]] = {}
    for label, component in zip(labels, components.tolist(), strict=True):
        groups_per_label.setdefault(label, set()).add(component)
    # No more folds than the rarest label has groups, so that stratification can put it in every fold.
    rarest = (
        min(len(groups) for groups in groups_per_label.values()) if settings.stratify else len(set(components.tolist()))
    )
    folds = min(FOLDS, rarest)
    if folds < len(settings.ratios):
        raise PipelineError(
            f"only {folds} independent groups of images in the rarest label: too few for split.ratios {settings.ratios}"
        )
    return folds


def pool(labels: Sequence[str], components: np.ndarray, folds: int, settings: SplitSettings) -> list[str]:
    """New split per row (rows in path order): stratified, grouped folds handed out by ratio."""
    strata = labels if settings.stratify else ["all"] * len(labels)
    fold_of = balanced_folds(strata, components, folds, settings.seed)
    if fold_of is None:
        fold_of = sklearn_folds(labels, components, folds, settings)
    split_of_fold = []
    for name, count in folds_per_split(settings.ratios, folds).items():
        split_of_fold += [name] * count
    return [split_of_fold[fold] for fold in fold_of]


def multi_label_pool(rows: Sequence[InterimRow], components: np.ndarray, settings: SplitSettings) -> list[str]:
    """New split per row of a multi-label set: its groups dealt by iterative stratification (split.stratify) or by
    size alone, in seeded random order."""
    names = sorted({name for row in rows for name in row.positives}) if settings.stratify else []
    ids, group_of = np.unique(components, return_inverse=True)
    vectors = np.zeros((len(ids), len(names)), np.int64)
    column = {name: index for index, name in enumerate(names)}
    for row, group in zip(rows, group_of.tolist(), strict=True):
        for name in row.positives:
            if name in column:
                vectors[group, column[name]] += 1
    splits = list(settings.ratios)
    chosen = iterative_stratification(
        vectors, np.bincount(group_of), [settings.ratios[name] for name in splits], settings.seed
    )
    return [splits[chosen[group]] for group in group_of.tolist()]


def iterative_stratification(vectors: np.ndarray, sizes: np.ndarray, ratios: Sequence[float], seed: int) -> np.ndarray:
    """The split index of each group (rows of `vectors`: positives per label; `sizes`: images), Sechidis et al.'s
    algorithm over groups: the label with the fewest positives left first, each of its groups (largest first,
    else in random order) to a split holding none of that label yet if any does (a rare label reaches every split
    its groups allow: 3 patients, 3 splits), else to the split whose want of that label is largest, then whose
    want of images is; the groups with no positive last, by want of images. Wants are a split's ratio of the
    total minus what it holds."""
    share = np.asarray(ratios, dtype=float)[:, None]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sizes))
    want_label = share * vectors.sum(axis=0)[None, :]
    want_images = share[:, 0] * sizes.sum()
    held = np.zeros_like(want_label, dtype=bool)  # split, label: holds a positive
    chosen = np.full(len(sizes), -1)
    tie_break = rng.permutation(len(share))  # the last key of each choice, seeded

    def place(group: int, label: int | None) -> None:
        if label is None:
            keys = (tie_break, -want_images)
        else:
            lacking = ~held[:, label] & (share[:, 0] > 0)
            keys = (tie_break, -want_images, -want_label[:, label], ~lacking)
        split = int(np.lexsort(keys)[0])
        chosen[group] = split
        want_label[split] -= vectors[group]
        want_images[split] -= sizes[group]
        held[split] |= vectors[group] > 0

    left = vectors.sum(axis=0)
    while (left > 0).any():
        label = int(np.argmin(np.where(left > 0, left, np.iinfo(np.int64).max)))
        holding = order[(vectors[order, label] > 0) & (chosen[order] < 0)]
        for group in holding[np.argsort(-vectors[holding, label], kind="stable")].tolist():
            place(group, label)
        left = vectors[chosen < 0].sum(axis=0)
    rest = order[chosen[order] < 0]
    for group in rest[np.argsort(-sizes[rest], kind="stable")].tolist():
        place(group, None)
    return chosen


def labels_missing(rows: Sequence[InterimRow], splits: Sequence[str]) -> dict[str, list[str]]:
    """A multi-label set's labels with positives that some split holds none of: split -> those labels."""
    everything = {name for row in rows for name in row.positives}
    missing = {}
    for name in sorted(set(splits)):
        held = {label for row, split in zip(rows, splits, strict=True) if split == name for label in row.positives}
        if everything - held:
            missing[name] = sorted(everything - held)
    return missing


def remap(source_splits: Sequence[str], settings: SplitSettings, dataset: str) -> list[str]:
    """keep: rename the archive's splits one to one; merge: fold some of them into others."""
    present = sorted(set(source_splits))
    mapping = settings.rename if settings.strategy == "keep" else settings.merge
    key = f"split.{'rename' if settings.strategy == 'keep' else 'merge'}"
    for source, target in mapping.items():
        if source not in present:
            raise PipelineError(
                f"{key}: {dataset} has no split {source!r} to map (its splits: {present}); see {dataset_file(dataset)}"
            )
        if settings.strategy == "merge" and (target not in present or target in mapping):
            raise PipelineError(
                f"{key}: merge target {target!r} of {dataset} does not exist after merging (its splits: {present})"
            )
    if settings.strategy == "keep" and len(set(mapping.values())) < len(mapping):
        raise PipelineError(
            f"{key}: two splits of {dataset} are renamed to the same name; use strategy merge to fold them"
        )
    result = [mapping.get(split, split) for split in source_splits]
    unplaced = sorted(set(result) - set(SPLIT_NAMES))
    if unplaced:
        raise PipelineError(
            f"split.strategy {settings.strategy}: {dataset}'s split(s) {unplaced} are none of {list(SPLIT_NAMES)}; "
            f"map them with {key} in {dataset_file(dataset)}, or use split.strategy pool"
        )
    return result


def carve_val(rows: Sequence[InterimRow], splits: list[str], settings: SplitSettings, dataset: str) -> list[str]:
    """keep, where the archive has no val (NIH's official train_val / test lists): val carved out of train as pool
    carves any split, grouped by patient and stratified, its share of train+val as split.ratios gives it; the
    archive's test split untouched."""
    train = [index for index, split in enumerate(splits) if split == "train"]
    share = settings.ratios["val"] / (settings.ratios["train"] + settings.ratios["val"])
    carving = settings.model_copy(update={"ratios": {"train": 1 - share, "val": share}})
    members = [rows[index] for index in train]
    labels = [row.label for row in members]
    components = leakage_components(members, settings.group)
    if any(row.positives for row in members):
        return _with_carved(splits, train, multi_label_pool(members, components, carving))
    try:
        folds = fold_count(labels, components, carving)
    except PipelineError:
        raise PipelineError(
            f"{dataset}'s train split has too few patients (or groups) of its rarest label to carve val out of it "
            f"(split.strategy keep, split.ratios in params.yaml); leave val out of split.ratios for no val"
        ) from None
    return _with_carved(splits, train, pool(labels, components, folds, carving))


def _with_carved(splits: list[str], train: list[int], carved: list[str]) -> list[str]:
    result = list(splits)
    for index, split in zip(train, carved, strict=True):
        result[index] = split
    return result


def check_every_split_has_every_label(
    labels: Sequence[str], splits: Sequence[str], dataset: str, settings: SplitSettings
) -> None:
    everything = set(labels)
    for name in sorted(set(splits)):
        missing = everything - {label for label, split in zip(labels, splits, strict=True) if split == name}
        if missing:
            raise PipelineError(
                f"split {name!r} of {dataset} would hold no {sorted(missing)} image "
                f"(split.strategy {settings.strategy}, split.ratios {settings.ratios} in params.yaml); "
                "give that split a larger ratio or use more images"
            )


@dataclass(frozen=True)
class OversizedGroup:
    """A leakage group holding more of a label's images than one fold's share: placed whole all the same."""

    images: int
    labels: dict[str, int]
    split: str
    example: str  # the path of its first image


@dataclass(frozen=True)
class Assignment:
    splits: list[str]  # one per row, in the order given
    oversized: list[OversizedGroup]  # largest first
    labels_missing: dict[str, list[str]]  # multi-label sets: split -> the labels too rare to reach it


def oversized_groups(
    rows: Sequence[InterimRow], components: np.ndarray, splits: Sequence[str], folds: int
) -> list[OversizedGroup]:
    """Groups with more images of some label than that label's share of one fold (its images / folds): whole
    groups then move a split's share of that label away from its ratio."""
    per_label = Counter(row.label for row in rows)
    members: dict[int, list[int]] = {}
    for index, component in enumerate(components.tolist()):
        members.setdefault(component, []).append(index)
    found = []
    for indices in members.values():
        labels = Counter(rows[index].label for index in indices)
        if any(count > per_label[label] / folds for label, count in labels.items()) and len(indices) > 1:
            first = indices[0]
            found.append(OversizedGroup(len(indices), dict(sorted(labels.items())), splits[first], rows[first].path))
    return sorted(found, key=lambda group: (-group.images, group.example))


def assign_splits(
    rows: Sequence[InterimRow], settings: SplitSettings, dataset: str, copy_pairs: Sequence[tuple[int, int, int]] = ()
) -> Assignment:
    """The split of each row, in the order given, and the groups too large for one fold (pooling only).

    `copy_pairs` (i, j, strength) index into `rows` as given.
    """
    order = sorted(range(len(rows)), key=lambda index: rows[index].path)
    rank = {original: position for position, original in enumerate(order)}
    ordered = [rows[index] for index in order]
    oversized: list[OversizedGroup] = []
    multi_label = any(row.positives for row in ordered)
    if settings.strategy == "pool":
        labels = [row.label for row in ordered]
        pairs = [(rank[a], rank[b], strength) for a, b, strength in copy_pairs]
        components = leakage_components(ordered, settings.group, pairs)
        if multi_label:
            ordered_splits = multi_label_pool(ordered, components, settings)
        else:
            folds = fold_count(labels, components, settings)
            ordered_splits = pool(labels, components, folds, settings)
            oversized = oversized_groups(ordered, components, ordered_splits, folds)
    else:
        ordered_splits = remap([row.source_split for row in ordered], settings, dataset)
        if settings.strategy == "keep" and "val" in settings.ratios and "val" not in ordered_splits:
            if not multi_label:
                check_every_split_has_every_label([row.label for row in ordered], ordered_splits, dataset, settings)
            ordered_splits = carve_val(ordered, ordered_splits, settings, dataset)
    if multi_label:
        missing = labels_missing(ordered, ordered_splits)
    else:
        check_every_split_has_every_label([row.label for row in ordered], ordered_splits, dataset, settings)
        missing = {}
    return Assignment([ordered_splits[rank[index]] for index in range(len(rows))], oversized, missing)
