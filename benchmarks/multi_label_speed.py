"""Multi-label sets at NIH ChestX-ray14's size: `add`, the split and restructure, each against a baseline.

    python -m benchmarks.multi_label_speed [--repeat 3]

- `add` on the NIH stand-in at real scale (112,120 PNGs of 16 x 16 pixels, `Data_Entry_2017.csv` with 112,120
  rows, both list files, the box table; built once into .benchmarks-cache/) against `unzip -l` of it: the
  target is at most 10 s beyond the listing.
- The split's assignment of 112,120 images of 30,805 patients with NIH's 14 labels at their published
  prevalences, patient-grouped and stratified (iterative stratification), against the same images split as a
  single-label set (each image's first finding, or none): the target is at most 30 s.
- Restructure of the stand-in at a tenth of the scale read as multi-label, against the same archive read as a
  single-label set (its `View Position` column as the label): the target is no slower (at most 1.1x, for noise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.add_speed import versus_listing
from benchmarks.common import CACHE, arguments, in_scratch, median_seconds
from harness.project import registry_entry
from medimage.archives.inspection import list_archive
from medimage.archives.reading import Limits
from medimage.archives.synthetic import write_archive
from medimage.archives.unpacking import restructure
from medimage.manifest import InterimRow
from medimage.settings.fetch import SyntheticSettings
from medimage.settings.project import DatasetSpec
from medimage.settings.restructure import RestructureSettings
from medimage.settings.split import SplitSettings
from medimage.splitting.assignment import assign_splits
from tests.samples import interim_row

NIH = "nih_chest_xray"
REAL_SCALE = 5798  # images_per_class giving the stand-in NIH's 112,120 images
IMAGES, PATIENTS = 112_120, 30_805


def nih_entry() -> DatasetSpec:
    return DatasetSpec.model_validate({"name": NIH, **registry_entry(NIH, {})})


def stand_in(images_per_class: int) -> Path:
    """The NIH stand-in archive with images of 16 x 16 pixels (add and restructure cost per member, not per pixel)."""
    archive = CACHE / f"nih-{images_per_class}.zip"
    if not archive.exists():
        CACHE.mkdir(exist_ok=True)
        partial = archive.with_suffix(".partial")
        write_archive(nih_entry(), SyntheticSettings(images_per_class=images_per_class, image_size=16), partial)
        partial.rename(archive)
    return archive


def add_seconds(repeat: int) -> tuple[float, float, int]:
    """Median seconds of `unzip -l` and of add's work (without writing) on the real-scale stand-in; its members."""
    archive = stand_in(REAL_SCALE)
    listing, ours = versus_listing(archive, repeat)
    return listing, ours, len(list_archive(archive, Limits.from_settings(RestructureSettings())).members)


def nih_items(multi_label: bool) -> list[InterimRow]:
    """112,120 images of 30,805 patients (each patient one image, the rest to random patients), each of NIH's 14
    labels drawn at its published prevalence; single-label: the first finding, or none, as the label."""
    entry = nih_entry()
    assert entry.synthetic is not None and entry.synthetic.findings is not None
    prevalence = entry.synthetic.findings.prevalence
    rng = np.random.default_rng(0)
    patients = np.concatenate([np.arange(PATIENTS), rng.integers(0, PATIENTS, IMAGES - PATIENTS)])
    present = rng.random((IMAGES, len(prevalence))) < np.array(list(prevalence.values()))[None, :]
    names = list(prevalence)
    items = []
    for image, (patient, row) in enumerate(zip(patients.tolist(), present, strict=True)):
        targets = tuple((name, int(flag)) for name, flag in zip(names, row, strict=True))
        positives = sorted(name for name, flag in targets if flag)
        label = "|".join(positives) if multi_label else min(positives, default="No Finding")
        path = f"all/{image:08d}.png"
        items.append(interim_row(path, label, "all", f"{image:064x}", str(patient), targets if multi_label else ()))
    return items


def split_seconds(repeat: int) -> tuple[float, float]:
    """Median seconds of the grouped, stratified split of the multi-label items and of their single-label twin."""
    settings = SplitSettings(strategy="pool", near_duplicates="off")
    timed = []
    for multi_label in (True, False):
        items = nih_items(multi_label)
        timed.append(median_seconds(lambda items=items: assign_splits(items, settings, NIH, []), repeat))
    return timed[0], timed[1]


def restructure_seconds(repeat: int) -> tuple[float, float, int]:
    """Median restructure seconds of the tenth-scale stand-in read as multi-label and as single-label; images."""
    archive = stand_in(REAL_SCALE // 10)
    entry = nih_entry()
    assert entry.labels is not None
    single = entry.model_copy(
        update={"labels": entry.labels.model_copy(update={"label_column": "View Position", "multi_label": None})}
    )
    timed = []
    for dataset in (entry, single):
        run = in_scratch(lambda out, d=dataset: restructure(archive, d, RestructureSettings(), out / "interim"))
        timed.append(median_seconds(run, repeat))
    members = len(list_archive(archive, Limits.from_settings(RestructureSettings())).members)
    return timed[0], timed[1], members


def main() -> None:
    args = arguments(__doc__).parse_args()
    listing, added, members = add_seconds(args.repeat)
    multi_split, single_split = split_seconds(args.repeat)
    multi_restructure, single_restructure, small = restructure_seconds(args.repeat)
    print(f"\nNIH ChestX-ray14 at its size, median of {args.repeat}\n")
    print("| operation | seconds | baseline | ratio |")
    print("|---|---|---|---|")
    print(f"| `stages.add`, {members:,} members, vs `unzip -l` | {added:.2f} | {listing:.2f} | {added / listing:.2f} |")
    print(
        f"| split of {IMAGES:,} images, {PATIENTS:,} patients, 14 labels, vs single-label | {multi_split:.2f} | "
        f"{single_split:.2f} | {multi_split / single_split:.2f} |"
    )
    print(
        f"| restructure, {small:,} members, multi-label vs single-label | {multi_restructure:.2f} | "
        f"{single_restructure:.2f} | {multi_restructure / single_restructure:.2f} |"
    )


if __name__ == "__main__":
    main()
