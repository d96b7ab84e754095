from __future__ import annotations

import pytest

from medimage.archives.layout import Layout, top_level_entries
from medimage.archives.reading import safe_member_name
from medimage.errors import PipelineError
from medimage.settings.project import DatasetSpec


def test_chest_xray_layout(registry: dict[str, DatasetSpec]) -> None:
    layout = Layout(registry["chest_xray"])
    placement = layout.place("chest_xray/train/PNEUMONIA/person1946_bacteria_4874.jpeg")
    assert placement is not None
    assert (placement.source_split, placement.label, placement.file, placement.group) == (
        "train",
        "PNEUMONIA",
        "person1946_bacteria_4874.jpeg",
        "1946",
    )
    assert layout.place("chest_xray/train/NORMAL/IM-0115-0001.jpeg").group == ""
    assert layout.place("chest_xray/chest_xray/train/NORMAL/IM-0115-0001.jpeg") is None  # one folder deeper: no match
    assert layout.place("chest_xray/train/NORMAL/notes.txt") is None  # not an image extension
    assert layout.ignore_rule("chest_xray/chest_xray/train/NORMAL/IM-0115-0001.jpeg") == "chest_xray/chest_xray/*"
    assert layout.ignore_rule("chest_xray/__MACOSX/chest_xray/train/NORMAL/._IM-0115-0001.jpeg") == "*/__MACOSX/*"
    assert layout.ignore_rule("chest_xray/train/.DS_Store") == ".DS_Store"
    assert layout.ignore_rule("chest_xray/train/NORMAL/IM-0115-0001.jpeg") is None


def test_split_names_are_mapped_then_lower_cased(registry: dict[str, DatasetSpec]) -> None:
    assert Layout(registry["blood_cells"]).canonical_split("TEST_SIMPLE") == "test_simple"
    assert Layout(registry["brain_tumor"]).canonical_split("Training") == "train"
    assert Layout(registry["chest_xray"]).canonical_split("VAL") == "val"
    covid = Layout(registry["covid19"]).place(
        "COVID-19_Radiography_Dataset/Viral Pneumonia/images/Viral Pneumonia-1.png"
    )
    assert covid is not None and covid.source_split == "all" and covid.label == "Viral Pneumonia"


def test_extensions_match_case_insensitively(registry: dict[str, DatasetSpec]) -> None:
    assert Layout(registry["brain_tumor"]).place("Training/glioma/Tr-gl_0010.JPG") is not None


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("a/b.jpg", "a/b.jpg"),
        ("a\\b.jpg", "a/b.jpg"),
        ("./a//b.jpg", "a/b.jpg"),
        ("dir/", "dir/"),
        ("ü/ñ b.jpg", "ü/ñ b.jpg"),
    ],
)
def test_safe_member_names(raw: str, safe: str) -> None:
    assert safe_member_name(raw) == safe


@pytest.mark.parametrize(
    "raw", ["../a.jpg", "a/../../b.jpg", "/etc/passwd", "C:\\x.jpg", "a/\x00b.jpg", "a/" + "x" * 300 + ".jpg"]
)
def test_unsafe_member_names(raw: str) -> None:
    with pytest.raises(PipelineError):
        safe_member_name(raw)


def test_top_level_entries_are_short_and_sorted() -> None:
    assert top_level_entries(["b/x", "a.txt", "b/y", "c/z"]) == "a.txt, b/, c/"
    assert top_level_entries([]) == "(empty archive)"
    assert top_level_entries([f"d{i}/x" for i in range(20)], limit=2).endswith("... (20 in all)")
