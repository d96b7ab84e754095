"""`stages.add` on a HAM10000-shaped archive of 100,000 images and a 100,000-row label table, against `unzip -l`.

    python -m benchmarks.add_speed [--repeat 3] [--images 100000]

`add` reads the member list and the tables only, so the images can be tiny: the archive (built once into
.benchmarks-cache/) holds two image folders, a lower-case duplicate of the first (as some HAM10000 versions do),
`HAM10000_metadata.csv` and a pixel table. Figures are medians; the difference to `unzip -l` is what `add` costs
beyond listing the archive.
"""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

from benchmarks.common import CACHE, arguments, median_seconds
from medimage.adding import propose, render
from medimage.archives.inspection import list_archive
from medimage.archives.reading import Limits
from medimage.settings.restructure import RestructureSettings

LABELS = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


def ham_archive(images: int) -> Path:
    archive = CACHE / f"ham-shaped-{images}.zip"
    if archive.exists():
        return archive
    CACHE.mkdir(exist_ok=True)
    partial = archive.with_suffix(".partial")
    rows = ["lesion_id,image_id,dx,dx_type,age,sex,localization"]
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as handle:
        for n in range(images):
            name = f"ISIC_{n:07d}.jpg"
            data = b"\xff\xd8\xff" + n.to_bytes(4, "big")  # never read by add
            handle.writestr(f"HAM10000_images_part_{1 + n % 2}/{name}", data)
            if n % 2 == 0:
                handle.writestr(f"ham10000_images_part_1/{name}", data)
            rows.append(f"HAM_{n // 2:07d},ISIC_{n:07d},{LABELS[n % 7]},histo,{n % 80},male,back")
        handle.writestr("HAM10000_metadata.csv", "\n".join(rows) + "\n")
        pixels = ",".join(f"pixel{p:04d}" for p in range(64)) + ",label\n" + ("0," * 64 + "2\n") * 1000
        handle.writestr("hmnist_8_8_L.csv", pixels)
    partial.rename(archive)
    return archive


def measure(repeat: int, images: int) -> tuple[float, float]:
    """Median seconds of `unzip -l` and of `stages.add`'s work (without writing) on the archive."""
    return versus_listing(ham_archive(images), repeat)


def versus_listing(archive: Path, repeat: int) -> tuple[float, float]:
    """Median seconds of `unzip -l` of any archive and of `stages.add`'s work on it (without writing)."""
    limits = Limits.from_settings(RestructureSettings())
    origin = {"kaggle": None, "archive": archive.name, "fetch": "path"}
    listing = median_seconds(
        lambda: subprocess.run(["unzip", "-l", str(archive)], check=True, capture_output=True), repeat
    )
    ours = median_seconds(lambda: render(propose("added", list_archive(archive, limits), origin), "bench"), repeat)
    return listing, ours


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--images", type=int, default=100_000)
    args = parser.parse_args()
    listing, ours = measure(args.repeat, args.images)
    members = len(zipfile.ZipFile(ham_archive(args.images)).infolist())
    print(f"\nHAM10000-shaped archive: {members:,} members, {args.images:,}-row label table, median of {args.repeat}\n")
    print("| operation | seconds | ratio to unzip -l |")
    print("|---|---|---|")
    print(f"| `unzip -l` (list the members) | {listing:.2f} | 1.00 |")
    print(f"| `stages.add` (list, check, read tables, plan, write YAML) | {ours:.2f} | {ours / listing:.2f} |")
    print(f"| difference: what add costs beyond listing | {ours - listing:.2f} | |")


if __name__ == "__main__":
    main()
