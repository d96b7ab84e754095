"""Data stages give the same bytes whatever SIMD code the libraries dispatch to and however many threads they use.

Machines differ in instruction sets (AVX2, AVX-512), and OpenCV and NumPy pick kernels at run time; float
kernels round differently from one to the next. fetch (synthetic), restructure and split use integer maths
and OpenCV's bit-exact 8-bit paths, so their outputs must not move when those kernels are switched off here.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from harness.project import make_project, run_in

SMALL = {"fetch": {"synthetic": {"images_per_class": 12, "image_size": 48}}}
DATA_STAGES = ("fetch", "restructure", "split")
# OpenCV and NumPy without their AVX/AVX2/FMA (and SSE4) kernels, single-threaded.
RESTRICTED = {
    "OPENCV_CPU_DISABLE": "AVX512_SKX,AVX2,FMA3,AVX,SSE4_2,SSE4_1,POPCNT,SSSE3",
    "NPY_DISABLE_CPU_FEATURES": "AVX2,FMA3,AVX,F16C",
    "OPENCV_FOR_THREADS_NUM": "1",
    "OMP_NUM_THREADS": "1",
}


def data_hashes(project: Path) -> dict[str, str]:
    stages = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    return {
        out["path"]: out["md5"]
        for name, stage in stages.items()
        if name.split("@")[0] in DATA_STAGES
        for out in stage.get("outs", [])
    }


def test_data_stages_are_byte_identical_under_restricted_dispatch_and_threads(tmp_path: Path) -> None:
    hashes = {}
    for name, variables in (
        ("default", {}),
        ("restricted", RESTRICTED),
        ("two_threads", {"OPENCV_FOR_THREADS_NUM": "2"}),
    ):
        project = make_project(tmp_path / name, SMALL)
        command = ["env", *(f"{key}={value}" for key, value in variables.items()), "dvc", "repro", "split"]
        run_in(project, *command)
        hashes[name] = data_hashes(project)
    # per dataset: archive and its provenance, interim, restructure metrics and report, processed, split metrics and
    # report, sheet
    assert len(hashes["default"]) == 4 * 9
    assert hashes["restricted"] == hashes["default"]
    assert hashes["two_threads"] == hashes["default"]
