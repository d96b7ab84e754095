"""Restructure of 2,000 512 x 512 16-bit DICOM files, uncompressed and JPEG 2000, against a plain loop over the same
members: `pydicom.dcmread` -> `pixel_array` -> `cv2.imwrite` of a PNG (no window, no checks, no manifest).

    python -m benchmarks.dicom_speed [--repeat 3] [--files 2000]

Both run on one core (the process's CPU affinity set to one), then restructure on every core the machine has
(the loop is single-threaded by nature). The archives are built once into .benchmarks-cache/. Targets: at most
1.2x the loop on one core, faster than it with every core.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import CACHE, arguments, in_scratch, median_seconds
from medimage.archives.unpacking import restructure
from medimage.settings.project import DatasetSpec
from medimage.settings.restructure import RestructureSettings
from tests.dicoms import Spec, dicom_bytes
from tests.samples import TOY

SYNTAXES = {"uncompressed": "explicit", "JPEG 2000 lossless": "jpeg2000_lossless"}
SIZE = 512


def grey(seed: int) -> np.ndarray:
    """A smooth 512 x 512 picture (noise compresses unlike a radiograph), 8-bit: stored at 16 bits."""
    rng = np.random.default_rng(seed)
    small = (rng.random((16, 16)) * 255).astype(np.uint8)
    return cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)


def archive(syntax: str, files: int) -> Path:
    path = CACHE / f"dicom-{syntax}-{files}.zip"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        partial = path.with_suffix(".partial")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as handle:
            for n in range(files):
                data = dicom_bytes(grey(n), Spec(syntax=syntax, bits=16, tags={"PatientID": f"P{n // 4}"}))
                handle.writestr(f"root/train/{'ab'[n % 2]}/{n:05d}.dcm", data)
        partial.rename(path)
    return path


def plain_loop(path: Path, out: Path) -> None:
    import pydicom

    with zipfile.ZipFile(path) as handle:
        for member in handle.namelist():
            pixels = pydicom.dcmread(io.BytesIO(handle.read(member))).pixel_array
            cv2.imwrite(str(out / f"{Path(member).stem}.png"), pixels)


def on_cores(cores: set[int], action: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        everything = os.sched_getaffinity(0)
        os.sched_setaffinity(0, cores)
        try:
            action()
        finally:
            os.sched_setaffinity(0, everything)

    return run


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    entry = DatasetSpec.model_validate({**TOY.model_dump(), "extensions": [".dcm"]})
    every = os.sched_getaffinity(0)
    one = {min(every)}
    print(f"\n{args.files:,} DICOM files of {SIZE} x {SIZE}, 16 bits; median of {args.repeat}\n")
    print("| syntax | plain loop, 1 core (s) | restructure, 1 core (s) | ratio | restructure, all cores (s) | ratio |")
    print("|---|---|---|---|---|---|")
    for name, syntax in SYNTAXES.items():
        path = archive(syntax, args.files)

        def ours(out: Path, source: Path = path) -> None:
            restructure(source, entry, RestructureSettings(), out / "interim")

        loop = median_seconds(on_cores(one, in_scratch(lambda out, source=path: plain_loop(source, out))), args.repeat)
        single = median_seconds(on_cores(one, in_scratch(ours)), args.repeat)
        both = median_seconds(on_cores(every, in_scratch(ours)), args.repeat)
        print(f"| {name} | {loop:.2f} | {single:.2f} | {single / loop:.2f} | {both:.2f} | {both / loop:.2f} |")


if __name__ == "__main__":
    main()
