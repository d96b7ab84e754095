"""A re-split of ~20,000 images after a seed change, through `dvc repro split@<ds>`: hardlinks vs copies.

    python -m benchmarks.resplit_speed [--repeat 3] [--images-per-class 5000]

Builds once, in .benchmarks-cache/resplit-<n>-small/, a throw-away project whose synthetic blood-cell archive
holds about 20,000 small images (4 labels x 5,000, 85x64: DVC's share does not depend on pixels), restructured,
with split.near_duplicates off (the copy search is timed apart, by the suite's grouping rows). Then, for each
configuration, changes split.seed and times: the whole `dvc repro split@blood_cells`, the stage command alone
(same work, no DVC), and `md5sum` of every processed file (the hashing floor under DVC). Medians; ratios are the
result.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.common import CACHE, arguments, refresh_code, seconds
from harness.project import make_project, registry_entry, run_in, update_yaml

DATASET = "blood_cells"
CONFIGURATIONS = {
    "hardlink (split.link hardlink, cache.type hardlink,copy)": ("hardlink", "hardlink,copy"),
    "copy (split.link copy, cache.type copy)": ("copy", "copy"),
}


def project(images_per_class: int, small: bool = True) -> Path:
    """The blood-cell project, restructured: small images without copy search, or 320x240 ones (the real size)."""
    folder = CACHE / (f"resplit-{images_per_class}-small" if small else f"resplit-{images_per_class}")
    if not (folder / "data" / "interim" / DATASET / "manifest.csv").is_file():
        print(f"building {folder} once (several minutes)...", file=sys.stderr)
        small_images = {"synthetic": {"scale": 1}, "split": {"near_duplicates": "off"}}
        make_project(  # image_size 64: real-size blood cells are drawn 3.75 times that, 320x240
            folder,
            {"datasets": [DATASET], "fetch": {"synthetic": {"images_per_class": images_per_class, "image_size": 64}}},
            {DATASET: registry_entry(DATASET, small_images if small else {})},
        )
        run_in(folder, "dvc", "repro", f"restructure@{DATASET}")
    refresh_code(folder)
    return folder


def md5_seconds(folder: Path) -> float:
    files = [str(path) for path in (folder / "data" / "processed" / DATASET).rglob("*") if path.is_file()]

    def hash_all() -> None:
        for chunk in range(0, len(files), 2000):
            subprocess.run(["md5sum", *files[chunk : chunk + 2000]], check=True, stdout=subprocess.DEVNULL)

    return seconds(hash_all)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--images-per-class", type=int, default=5000)
    args = parser.parse_args()
    folder = project(args.images_per_class)
    images = sum(1 for _ in (folder / "data" / "interim" / DATASET).rglob("*.jpeg"))
    size_mb = sum(path.stat().st_size for path in (folder / "data" / "interim" / DATASET).rglob("*.jpeg")) / 1e6
    seed = 100
    results = {}
    for name, (link, cache_type) in CONFIGURATIONS.items():
        run_in(folder, "dvc", "config", "cache.type", cache_type)
        update_yaml(folder / "params.yaml", {"split": {"link": link}})
        repro, alone, md5 = [], [], []
        for _ in range(args.repeat):
            seed += 1
            update_yaml(folder / "params.yaml", {"split": {"seed": seed}})
            repro.append(seconds(lambda: run_in(folder, "dvc", "repro", f"split@{DATASET}")))
            md5.append(md5_seconds(folder))
            alone.append(seconds(lambda: run_in(folder, sys.executable, "-m", "stages.split", DATASET)))
        results[name] = (statistics.median(repro), statistics.median(alone), statistics.median(md5))
    baseline = results[next(iter(CONFIGURATIONS))][0]
    print(
        f"\nre-split of {images:,} images ({size_mb:,.0f} MB) after a seed change, "
        f"median of {args.repeat}, {os.cpu_count()} cores\n"
    )
    print(
        "| configuration | `dvc repro split` s | stage alone s | inside DVC | md5sum floor s "
        "| repro / md5 floor | vs hardlink |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, (repro, alone, md5) in results.items():
        print(
            f"| {name} | {repro:.1f} | {alone:.1f} | {max(0.0, repro - alone) / repro:.0%} | {md5:.1f} "
            f"| {repro / md5:.1f}x | {repro / baseline:.2f}x |"
        )


if __name__ == "__main__":
    main()
