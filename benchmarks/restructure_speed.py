"""Restructure throughput on a synthetic chest X-ray archive of real size, against `unzip -q` of the same archive.

    python -m benchmarks.restructure_speed [--repeat 3]

The archive (5,856 images like Kaggle's, about 1,300x1,000 px, plus the nested copy and AppleDouble files)
is generated once into .benchmarks-cache/ (git-ignored). Figures are medians; the ratio is what to compare
across machines.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from benchmarks.common import CACHE, arguments, in_scratch, median_seconds
from medimage.archives import synthetic
from medimage.archives.unpacking import restructure
from medimage.params import RestructureSettings, SyntheticSettings, load_dataset, load_params

REAL_SCALE = SyntheticSettings(images_per_class=2928, image_size=1000, seed=0)  # 5,856 images over 2 labels


def real_scale_archive() -> Path:
    archive = CACHE / "chest_xray-real-scale.zip"
    if not archive.exists():
        CACHE.mkdir(exist_ok=True)
        params = load_params()
        partial = archive.with_suffix(".partial")
        print(f"generating {archive} once (a few minutes)...")
        synthetic.write_archive(load_dataset("chest_xray", params), REAL_SCALE, partial)
        partial.rename(archive)
    return archive


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


if __name__ == "__main__":
    main()
