"""The splitter: leakage-free, stratified, seeded, order-independent; keep/merge rules; invalid settings refused."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medimage.errors import PipelineError
from medimage.manifest import InterimRow
from medimage.settings.split import SplitSettings
from medimage.splitting.assignment import assign_splits, folds_per_split, leakage_components
from tests.samples import interim_row

RATIOS = [
    {"train": 0.8, "test": 0.2},
    {"train": 0.7, "val": 0.15, "test": 0.15},
    {"train": 0.6, "val": 0.2, "test": 0.2},
    {"train": 0.5, "test": 0.5},
]


@st.composite
def manifests(draw: st.DrawFn) -> list[InterimRow]:
    """300-500 images, 2-3 labels, patients with 1-4 images (some without id), some byte-identical copies."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    labels = ["A", "B", "C"][: draw(st.integers(2, 3))]
    items: list[InterimRow] = []
    patient = 0
    while len(items) < draw(st.integers(300, 500)):
        patient += 1
        label = rng.choice(labels)
        group = f"p{patient}" if rng.random() < 0.7 else ""
        for _ in range(rng.randint(1, 4) if group else 1):
            index = len(items)
            sha = f"sha{rng.randrange(index)}" if index and rng.random() < 0.05 else f"sha{index}"
            items.append(interim_row(f"img{index:05d}.jpg", label, rng.choice(["train", "test"]), sha, group))
    return items


def straddling(items: list[InterimRow], splits: list[str], key: str) -> list[str]:
    seen: dict[str, set[str]] = defaultdict(set)
    for item, split in zip(items, splits, strict=True):
        if getattr(item, key):
            seen[getattr(item, key)].add(split)
    return [value for value, found in seen.items() if len(found) > 1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=manifests(), ratios=st.sampled_from(RATIOS), seed=st.integers(0, 10_000))
def test_pooled_splits_are_leak_free_stratified_on_ratio_and_order_independent(
    items: list[InterimRow], ratios: dict[str, float], seed: int
) -> None:
    config = SplitSettings(strategy="pool", ratios=ratios, seed=seed)
    splits = assign_splits(items, config, "toy").splits

    assert straddling(items, splits, "group") == []
    assert straddling(items, splits, "sha256") == []
    # groups are placed whole, so a split's share can miss by up to the largest group (copies chain patients)
    largest = max(Counter(leakage_components(items, by_group=True).tolist()).values()) / len(items)
    shares = Counter(splits)
    for name, ratio in ratios.items():
        assert abs(shares[name] / len(items) - ratio) < 0.06 + largest, (name, shares, largest)
    overall = Counter(item.label for item in items)
    for name in ratios:
        members = [item.label for item, split in zip(items, splits, strict=True) if split == name]
        for label, count in overall.items():
            share = abs(members.count(label) / len(members) - count / len(items))
            assert share < 0.12 + largest / ratios[name], (name, label, largest)

    shuffled = list(range(len(items)))
    random.Random(seed).shuffle(shuffled)
    again = assign_splits([items[index] for index in shuffled], config, "toy").splits
    assert {items[index].path: split for index, split in zip(shuffled, again, strict=True)} == {
        item.path: split for item, split in zip(items, splits, strict=True)
    }


@settings(max_examples=10, deadline=None)
@given(items=manifests())
def test_the_seed_alone_changes_the_split(items: list[InterimRow]) -> None:
    first = assign_splits(items, SplitSettings(seed=1), "toy").splits
    assert assign_splits(items, SplitSettings(seed=1), "toy").splits == first
    assert assign_splits(items, SplitSettings(seed=2), "toy").splits != first


def test_grouping_off_ignores_patients_but_never_duplicates() -> None:
    items = [interim_row(f"{i}.jpg", "AB"[i % 2], "train", "same" if i < 2 else f"s{i}", "p1") for i in range(200)]
    components = leakage_components(items, by_group=False)
    assert components[0] == components[1] and len(set(components.tolist())) == 199
    assert len(set(leakage_components(items, by_group=True).tolist())) == 1


def test_copy_pairs_join_groups() -> None:
    items = [interim_row(f"{i}.jpg", "AB"[i % 2], "train", f"s{i}", "") for i in range(100)]
    components = leakage_components(items, by_group=True, copy_pairs=[(3, 50, 30), (50, 97, 30)])
    assert components[3] == components[50] == components[97]
    splits = assign_splits(items, SplitSettings(), "toy", copy_pairs=[(3, 51, 30), (51, 97, 30)]).splits
    assert splits[3] == splits[51] == splits[97]


def test_a_chain_of_verified_copies_stays_one_group_placed_whole_and_reported() -> None:
    """A chain of verified pairs is one source however long: 21 images of label A (of 50) in one split."""
    items = [interim_row(f"{i:03d}.jpg", "AB"[i % 2], "train", f"s{i}", "") for i in range(100)]
    chain = [(i, i + 2, 100 - i) for i in range(0, 40, 2)]  # 0-2-4-...-40
    components = leakage_components(items, by_group=False, copy_pairs=chain)
    assert len({components[i] for i in range(0, 42, 2)}) == 1
    assignment = assign_splits(items, SplitSettings(), "toy", chain)
    assert len({assignment.splits[i] for i in range(0, 42, 2)}) == 1
    (group,) = assignment.oversized  # 21 of A's 50 images: more than a fold's 2.5
    assert (group.images, group.labels, group.split) == (21, {"A": 21}, assignment.splits[0])
    assert assign_splits(items, SplitSettings(), "toy", chain[:1]).oversized == []  # 2 images: within a fold


@pytest.mark.parametrize(
    ("ratios", "expected"),
    [
        ({"train": 0.8, "test": 0.2}, {"test": 4, "train": 16}),
        ({"train": 0.7, "val": 0.15, "test": 0.15}, {"test": 3, "val": 3, "train": 14}),
    ],
)
def test_three_way_ratios_are_reached_with_twenty_folds(ratios: dict[str, float], expected: dict[str, int]) -> None:
    assert folds_per_split(ratios, 20) == expected


def _archive_items() -> list[InterimRow]:
    items = []
    for split, count in (("train", 40), ("val", 4), ("test", 10), ("test_simple", 6)):
        items += [interim_row(f"{split}/{i}.jpg", "AB"[i % 2], split, f"{split}{i}", "") for i in range(count)]
    return items


def test_keep_and_merge() -> None:
    items = _archive_items()
    kept = assign_splits(
        items, SplitSettings(strategy="keep", rename={"test_simple": "val", "val": "test"}), "toy"
    ).splits
    assert Counter(kept) == {"train": 40, "val": 6, "test": 14}
    merged = assign_splits(
        items, SplitSettings(strategy="merge", merge={"val": "train", "test_simple": "test"}), "toy"
    ).splits
    assert Counter(merged) == {"train": 44, "test": 16}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            SplitSettings(strategy="keep"),
            r"split\(s\) \['test_simple'\] are none of \['train', 'val', 'test'\]; map them with split.rename",
        ),
        (
            SplitSettings(strategy="merge", merge={"val": "holdout", "test_simple": "test"}),
            "split.merge: merge target 'holdout' of toy does not exist",
        ),
        (SplitSettings(strategy="merge", merge={"missing": "train"}), "split.merge: toy has no split 'missing' to map"),
        (SplitSettings(strategy="keep", rename={"val": "test", "test_simple": "test"}), "renamed to the same name"),
    ],
)
def test_keep_and_merge_errors_name_the_key(config: SplitSettings, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        assign_splits(_archive_items(), config, "toy")


def test_a_split_without_some_label_is_refused() -> None:
    items = [interim_row(f"{i}.jpg", "A", "train", f"s{i}", "") for i in range(60)] + [
        interim_row("rare.jpg", "B", "train", "r", "")
    ]
    with pytest.raises(
        PipelineError, match=r"only 1 independent groups of images in the rarest label: too few for split.ratios"
    ):
        assign_splits(items, SplitSettings(), "toy")
    kept = [*items, interim_row("test/a.jpg", "A", "test", "t", "")]
    with pytest.raises(PipelineError, match=r"split 'test' of toy would hold no \['B'\] image \(split.strategy keep"):
        assign_splits(kept, SplitSettings(strategy="keep"), "toy")


@pytest.mark.parametrize(
    ("ratios", "message"),
    [
        ({"train": 0.8, "test": 0.3}, "ratios must sum to 1, got 1.1"),
        ({"train": 0.8, "holdout": 0.2}, "unknown split name"),
        ({"train": 1.0}, "needs at least train and test"),
    ],
)
def test_invalid_ratios(ratios: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SplitSettings(ratios=ratios)


def test_registry_split_keys_the_strategy_ignores_are_named(registry: dict) -> None:
    """chest X-ray's `merge` and blood cells' `merge` and `rename` do nothing under the default pool: each is named
    with its file, and none under the strategy it serves."""
    from medimage.settings.split import ignored_overrides, split_settings

    chest, blood = registry["chest_xray"], registry["blood_cells"]
    pooled = ignored_overrides(split_settings(SplitSettings(), chest), chest)
    assert pooled == [
        "datasets/chest_xray.yaml split.merge applies under split.strategy merge, not pool: it does nothing here"
    ]
    assert ignored_overrides(split_settings(SplitSettings(strategy="merge"), chest), chest) == []
    assert len(ignored_overrides(split_settings(SplitSettings(), blood), blood)) == 2
    kept = ignored_overrides(split_settings(SplitSettings(strategy="keep"), blood), blood)
    assert [line.split()[1] for line in kept] == ["split.merge"]
