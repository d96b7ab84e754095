"""Restructure throughput on a synthetic chest X-ray archive of real size, against `unzip -q` of the same archive;
and restructure of the table-labelled HAM10000 stand-in against a folder-labelled twin of the same size.

    python -m benchmarks.restructure_speed [--repeat 3]

The archives (5,856 images like Kaggle's, about 1,300x1,000 px, plus the nested copy and AppleDouble files;
10,015 600x450 dermoscopy-sized images, plus the lower-case copy) are generated once into .benchmarks-cache/
(git-ignored). The twin holds the same images under label folders (`<part>/<dx>/<name>`) and no table. Figures
are medians; the ratios are what to compare across machines.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from benchmarks.common import CACHE, arguments, in_scratch, median_seconds
from medimage.archives import synthetic
from medimage.archives.unpacking import restructure
from medimage.settings.fetch import SyntheticSettings
from medimage.settings.files import dataset_file
from medimage.settings.project import DatasetSpec, load_dataset, load_params
from medimage.settings.restructure import RestructureSettings

REAL_SCALE = SyntheticSettings(images_per_class=2928, image_size=1000, seed=0)  # 5,856 images over 2 labels
HAM_SCALE = SyntheticSettings(images_per_class=1431, image_size=450, seed=0)  # 10,015 images over 7 labels


def cached_archive(dataset: DatasetSpec, knobs: SyntheticSettings, name: str) -> Path:
    archive = CACHE / name
    if not archive.exists():
        CACHE.mkdir(exist_ok=True)
        partial = archive.with_suffix(".partial")
        print(f"generating {archive} once (a few minutes)...")
        synthetic.write_archive(dataset, knobs, partial)
        partial.rename(archive)
    return archive


def real_scale_archive() -> Path:
    return cached_archive(load_dataset("chest_xray", load_params()), REAL_SCALE, "chest_xray-real-scale.zip")


def ham10000_and_folder_twin() -> list[tuple[DatasetSpec, Path]]:
    """The HAM10000 stand-in (labels in HAM10000_metadata.csv) and its twin with the labels as folders."""
    table = DatasetSpec.model_validate({"name": "ham10000", **yaml.safe_load(dataset_file("ham10000").read_text())})
    assert table.synthetic is not None
    twin_spec = table.synthetic.model_copy(update={"member": "{split}/{label}/{name}", "table": None})
    twin = table.model_copy(
        update={"labels": None, "layout": ["HAM10000_images_part_*/{label}/{file}"], "synthetic": twin_spec}
    )
    return [
        (dataset, cached_archive(dataset, HAM_SCALE, f"{dataset.name}-{kind}-real-scale.zip"))
        for dataset, kind in ((table, "table"), (twin, "folders"))
    ]


def table_versus_folders(repeat: int) -> tuple[float, float, int]:
    """Median restructure seconds of the table-labelled archive and of its folder-labelled twin; images in each."""
    (table, table_archive), (twin, twin_archive) = ham10000_and_folder_twin()
    timed = [
        median_seconds(
            in_scratch(lambda out, d=dataset, a=archive: restructure(a, d, RestructureSettings(), out / "out")),
            repeat,
        )
        for dataset, archive in ((table, table_archive), (twin, twin_archive))
    ]
    assert table.synthetic is not None
    return timed[0], timed[1], len(synthetic.plan_images(table.synthetic, HAM_SCALE.images_per_class))


def main() -> None:
    parser = arguments(__doc__)
    args = parser.parse_args()
    archive = real_scale_archive()
    dataset = load_dataset("chest_xray", load_params())
    images = len(synthetic.plan_images(dataset.synthetic, REAL_SCALE.images_per_class))
    unzip_all = in_scratch(
        lambda out: subprocess.run(["unzip", "-q", str(archive), "-d", str(out / "out")], check=True)
    )
    unzip = median_seconds(unzip_all, args.repeat)
    ours = median_seconds(
        in_scratch(lambda out: restructure(archive, dataset, RestructureSettings(), out / "out")), args.repeat
    )
    size_mb = archive.stat().st_size / 1e6
    print(
        f"\nchest_xray at real scale: {images:,} images, archive {size_mb:,.0f} MB (with nested copy), "
        f"median of {args.repeat}\n"
    )
    print("| operation | seconds | images/s | ratio to unzip -q |")
    print("|---|---|---|---|")
    print(f"| `unzip -q` (all members, no validation) | {unzip:.2f} | {images / unzip:,.0f} | 1.00 |")
    print(f"| `restructure` (stream, validate, hash, write) | {ours:.2f} | {images / ours:,.0f} | {ours / unzip:.2f} |")
    table, folders, ham_images = table_versus_folders(args.repeat)
    print(f"\nHAM10000 stand-in at real scale: {ham_images:,} images, median of {args.repeat}\n")
    print("| operation | seconds | images/s | ratio to folder labels |")
    print("|---|---|---|---|")
    print(f"| `restructure`, labels from folders (the twin) | {folders:.2f} | {ham_images / folders:,.0f} | 1.00 |")
    print(
        f"| `restructure`, labels from HAM10000_metadata.csv | {table:.2f} | {ham_images / table:,.0f} | "
        f"{table / folders:.2f} |"
    )


if __name__ == "__main__":
    main()
