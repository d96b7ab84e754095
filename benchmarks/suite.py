"""`make bench`: every benchmark in one markdown table, each figure a ratio against a baseline measured in the same run.

    python -m benchmarks.suite [--repeat 3] [--images-per-class 5000]
        [--only restructure,add,resplit,grouping,loaders,prepared,noop,report,bootstrap,stall,multi_label,nih]

Data is generated once into .benchmarks-cache/ (git-ignored): a real-scale synthetic chest X-ray archive
(5,856 JPEGs), a ~20,000-image blood-cell project, 2,000 RGB 512x512 JPEGs, 300 grey chest-sized ones and
NIH-layout stand-ins of 5,000 and 20,000 1024x1024 PNGs (9.4 GB; the nih section needs about 40 GB free).
Times are medians of --repeat runs. The last column says whether this run met the target we hold ourselves to.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from benchmarks import add_speed, loader_speed, multi_label_speed, nih_scale, resplit_speed, restructure_speed
from benchmarks.common import CACHE, arguments, in_scratch, median_seconds, refresh_code
from harness.project import DEFAULT_DATASETS, make_project, run_in
from medimage.archives.unpacking import restructure
from medimage.reporting.clinical import Metric, bootstrap
from medimage.reporting.scores import macro_roc_auc
from medimage.settings.project import load_dataset, load_params
from medimage.settings.restructure import RestructureSettings
from medimage.settings.split import SplitSettings

MET = {True: "yes", False: "**no**", None: "-"}
SECTIONS = (
    *("restructure", "add", "resplit", "grouping", "loaders", "prepared", "noop", "report", "bootstrap", "stall"),
    *("multi_label", "nih"),
)


@dataclass(frozen=True)
class Row:
    benchmark: str
    ours: str
    baseline: str
    ratio: float
    target: str  # e.g. "<= 2.0x"
    met: bool | None  # None: a reference row, with no target


def row(
    benchmark: str,
    ours: float,
    ours_label: str,
    baseline: float,
    baseline_label: str,
    ratio: float,
    bound: float,
    at_most: bool,
) -> Row:
    met = ratio <= bound if at_most else ratio >= bound
    return Row(
        benchmark,
        f"{ours_label} {ours:.2f}",
        f"{baseline_label} {baseline:.2f}",
        ratio,
        f"{'<=' if at_most else '>='} {bound:g}x",
        met,
    )


# --------------------------------------------------------------------------- 1. restructure


def unzip_kept(archive: Path, out: Path) -> None:
    """`unzip -q` of the members restructure keeps (not the nested copy or the AppleDouble files): the floor."""
    subprocess.run(
        ["unzip", "-q", str(archive), "-d", str(out), "-x", "chest_xray/chest_xray/*", "chest_xray/__MACOSX/*"],
        check=True,
    )


def unzip_and_split_folders(archive: Path, out: Path) -> None:
    import splitfolders

    unzip_kept(archive, out / "unzipped")
    splitfolders.ratio(
        str(out / "unzipped" / "chest_xray" / "train"), output=str(out / "split"), seed=1337, ratio=(0.8, 0.2)
    )


def restructure_rows(repeat: int) -> list[Row]:
    archive = restructure_speed.real_scale_archive()
    dataset = load_dataset("chest_xray", load_params())
    floor = median_seconds(in_scratch(lambda out: unzip_kept(archive, out)), repeat)
    users = median_seconds(in_scratch(lambda out: unzip_and_split_folders(archive, out)), repeat)
    ours = median_seconds(
        in_scratch(lambda out: restructure(archive, dataset, RestructureSettings(), out / "interim")), repeat
    )
    table, folders, images = restructure_speed.table_versus_folders(repeat)
    return [
        row(
            "restructure 5,856 JPEGs (s) vs `unzip -q` of the same members",
            ours,
            "ours",
            floor,
            "unzip",
            ours / floor,
            2.0,
            True,
        ),
        row(
            "restructure vs unzip + `split-folders` copy (speed-up)",
            ours,
            "ours",
            users,
            "users'",
            users / ours,
            3.0,
            False,
        ),
        row(
            f"restructure {images:,} JPEGs labelled by a table vs by folders (HAM10000 stand-in and twin, s)",
            table,
            "table",
            folders,
            "folders",
            table / folders,
            1.1,
            True,
        ),
    ]


# --------------------------------------------------------------------------- 2. re-split


def flat_folder(project: Path) -> Path:
    """The project's interim images as <label>/<file> (hardlinks), the input split-folders expects."""
    flat = CACHE / f"flat-{project.name}"
    if not flat.is_dir():
        partial = CACHE / f"flat-{project.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        interim = project / "data" / "interim" / resplit_speed.DATASET
        for path in interim.rglob("*.jpeg"):
            target = partial / path.parent.name / f"{path.parent.parent.name}_{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
        partial.rename(flat)
    return flat


def split_folders(flat: Path, out: Path, move: bool | str) -> None:
    import splitfolders

    splitfolders.ratio(str(flat), output=str(out), seed=1337, ratio=(0.8, 0.2), move=move)


def resplit_rows(repeat: int, images_per_class: int) -> list[Row]:
    from medimage.splitting.resplit import write_split

    project = resplit_speed.project(images_per_class)
    images = 4 * images_per_class
    run_in(project, "dvc", "config", "cache.type", "hardlink,copy")
    resplit_speed.update_yaml(project / "params.yaml", {"split": {"link": "hardlink"}})
    flat = flat_folder(project)
    interim = project / "data" / "interim" / resplit_speed.DATASET
    settings = SplitSettings(strategy="pool", ratios={"train": 0.8, "test": 0.2})
    ours = median_seconds(
        in_scratch(lambda out: write_split(settings, resplit_speed.DATASET, interim, out / "processed")), repeat
    )
    copy = median_seconds(in_scratch(lambda out: split_folders(flat, out, False)), repeat)
    symlink = median_seconds(in_scratch(lambda out: split_folders(flat, out, "symlink")), repeat)
    seeds = itertools.count(1000)  # every timed run sees a new seed
    repro = median_seconds(
        lambda: run_in(project, "dvc", "repro", f"split@{resplit_speed.DATASET}"),
        repeat,
        setup=lambda: resplit_speed.update_yaml(project / "params.yaml", {"split": {"seed": next(seeds)}}),
    )
    alone = median_seconds(
        lambda: run_in(project, sys.executable, "-m", "stages.split", resplit_speed.DATASET),
        repeat,
        setup=lambda: resplit_speed.update_yaml(project / "params.yaml", {"split": {"seed": next(seeds)}}),
    )
    floor = median_seconds(lambda: resplit_speed.md5_seconds(project), repeat)
    return [
        row(
            f"split itself, {images:,} images (s) vs `split-folders` copy (speed-up)",
            ours,
            "ours",
            copy,
            "split-folders",
            copy / ours,
            10.0,
            False,
        ),
        row(
            "split itself vs `split-folders` symlink mode (speed-up; no target)",
            ours,
            "ours",
            symlink,
            "split-folders",
            symlink / ours,
            1.0,
            False,
        ),
        row(
            f"`dvc repro split` after a seed change, {images:,} images (s) vs the stage run alone",
            repro,
            "repro",
            alone,
            "stage",
            repro / alone,
            1.5,
            True,
        ),
        Row(  # no target: how far DVC's run is from hashing the view's bytes once
            "`dvc repro split` after a seed change (s) vs `md5sum` of the view's files",
            f"repro {repro:.2f}",
            f"md5sum {floor:.2f}",
            repro / floor,
            "reference",
            None,
        ),
    ]


def grouping_rows(repeat: int, images: int = 12_500) -> list[Row]:
    """Keeping copies together (split.near_duplicates keypoints: every blood-cell image matched to the originals
    the archive ships, copies searched among the rest) against the same split without it: from an empty copy
    cache (a first split), and after a seed change (the cache holds this image set's keypoints and pairs)."""
    from medimage.splitting.resplit import write_split

    project = resplit_speed.project(images // 4, small=False)
    interim = project / "data" / "interim" / resplit_speed.DATASET
    plain = SplitSettings(strategy="pool")
    grouped = SplitSettings(strategy="pool", near_duplicates="keypoints")
    baseline = median_seconds(
        in_scratch(lambda out: write_split(plain, resplit_speed.DATASET, interim, out / "processed")), repeat
    )
    cold = median_seconds(
        in_scratch(lambda out: write_split(grouped, resplit_speed.DATASET, interim, out / "p", out / "cache")), repeat
    )
    cache = CACHE / "copy-cache"
    shutil.rmtree(cache, ignore_errors=True)
    write_split(grouped, resplit_speed.DATASET, interim, CACHE / "primed", cache)  # the first split fills it
    shutil.rmtree(CACHE / "primed")
    reseeded = grouped.model_copy(update={"seed": 2})
    warm = median_seconds(
        in_scratch(lambda out: write_split(reseeded, resplit_speed.DATASET, interim, out / "p", cache)), repeat
    )
    return [
        Row(
            f"split with copies grouped (keypoints), {images:,} blood-cell images, first split (s) vs split without",
            f"ours {cold:.1f}",
            f"no grouping {baseline:.1f}",
            cold / baseline,
            "<= 120 s",
            cold <= 120,
        ),
        Row(
            "the same after a seed change, copy cache warm (s) vs split without",
            f"ours {warm:.1f}",
            f"no grouping {baseline:.1f}",
            warm / baseline,
            "<= 120 s",
            warm <= 120,
        ),
    ]


# --------------------------------------------------------------------------- 3. loaders

GREY = CACHE / "loaders-grey"
GREY_COUNT = 300
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report its parent's peak.
PEAK_SCRIPT = """
import sys
import tempfile
from pathlib import Path
sys.path.insert(0, {root!r})
from benchmarks import loader_speed
loader_speed.{function}(Path({folder!r}), {labels!r})
print(next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def grey_images() -> Path:
    """Chest-X-ray-sized grey JPEGs (about 1,300 x 1,000), where reduced decoding matters most."""
    return loader_speed.generate(
        GREY,
        GREY_COUNT,
        seed=1,
        size=lambda rng: (int(rng.integers(900, 1100)), int(rng.integers(1200, 1400))),
        channels=1,
        noise=10,
    )


def peak_memory(function: str, folder: Path, labels: list[str]) -> int:
    script = PEAK_SCRIPT.format(root=str(Path.cwd()), function=function, folder=str(folder), labels=labels)
    result = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    return int(result.stdout.split()[-1])


def loader_rows(repeat: int) -> list[Row]:
    rows = []
    for name, folder in (
        ("RGB 512x512, 2,000", loader_speed.images()),
        (f"grey ~1,300x1,000, {GREY_COUNT}", grey_images()),
    ):
        keras_rate = loader_speed.rate(loader_speed.keras_pass, folder, repeat)
        ours_rate = loader_speed.rate(loader_speed.opencv_pass, folder, repeat)
        legacy_rate = loader_speed.rate(loader_speed.legacy_pass, folder, repeat)
        rows.append(
            row(
                f"loader {name} -> 224 (img/s) vs keras",
                ours_rate,
                "ours",
                keras_rate,
                "keras",
                ours_rate / keras_rate,
                1.0,
                False,
            )
        )
        rows.append(
            row(
                f"loader {name} -> 224 (img/s) vs ImageDataGenerator",
                ours_rate,
                "ours",
                legacy_rate,
                "legacy",
                ours_rate / legacy_rate,
                2.0,
                False,
            )
        )
    one_core = loader_speed.images()  # per core: how many cores keep a GPU fed (docs/scaling.md)
    ours_one = loader_speed.rate(lambda where: loader_speed.opencv_pass(where, threads=1), one_core, repeat)
    keras_one = loader_speed.rate(lambda where: loader_speed.keras_pass(where, threads=1), one_core, repeat)
    rows.append(
        row(
            "loader RGB 512x512 -> 224 on 1 thread (img/s per core)",
            ours_one,
            "ours",
            keras_one,
            "keras",
            ours_one / keras_one,
            1.0,
            False,
        )
    )
    processed = resplit_speed.project(5000) / "data" / "processed" / resplit_speed.DATASET
    if not processed.is_dir():
        run_in(processed.parents[2], "dvc", "repro", f"split@{resplit_speed.DATASET}")
    labels = sorted(path.name for path in (processed / "train").iterdir())
    gib = 1024**3
    for function, label in (("opencv_pass", "ours"), ("keras_pass", "keras")):
        peak = peak_memory(function, processed, labels) / gib
        rows.append(
            Row(
                f"peak memory, one pass over the ~16,000 train images ({label}), GiB",
                f"{label} {peak:.2f}",
                "limit 1.00",
                peak,
                "<= 1.0x",
                peak <= 1.0,
            )
        )
    return rows


def prepared_rows(repeat: int) -> list[Row]:
    """The pixels stage: making the pixels once against one decode-and-resize pass (the floor, both cores), and
    reading them, by either loader, against Keras' directory loader decoding the sources."""
    folder = loader_speed.images()
    floor = median_seconds(lambda: loader_speed.opencv_pass(folder), repeat)
    making = median_seconds(in_scratch(lambda out: loader_speed.make_pixels_pass(folder, out)), repeat)
    rows = [
        row(
            f"make the pixels, {loader_speed.COUNT:,} RGB 512x512 -> 224 (s) vs one decode-and-resize pass",
            making,
            "pixels",
            floor,
            "pass",
            making / floor,
            1.1,
            True,
        )
    ]
    keras_rate = loader_speed.rate(loader_speed.keras_pass, folder, repeat)
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        loader_speed.make_pixels_pass(folder, Path(scratch))
        images = loader_speed.prepared_images(folder, Path(scratch))
        for name, reader in (
            ("keras", loader_speed.prepared_keras_pass),
            ("opencv", loader_speed.prepared_opencv_pass),
        ):
            prepared_rate = reader(images) / median_seconds(lambda reader=reader: reader(images), repeat)
            rows.append(
                row(
                    f"read the prepared pixels, {name} loader (img/s) vs keras decoding the sources",
                    prepared_rate,
                    "prepared",
                    keras_rate,
                    "keras",
                    prepared_rate / keras_rate,
                    10.0,
                    False,
                )
            )
    return rows


# --------------------------------------------------------------------------- 4. no-op


def default_project() -> Path:
    """The four default datasets, run through every stage once.

    With the scikit-learn model: the no-op cost is DVC's, not the model's.
    """
    folder = CACHE / "noop-defaults"
    if not (folder / "dvc.lock").is_file() or "evaluate@brain_tumor" not in (folder / "dvc.lock").read_text():
        shutil.rmtree(folder, ignore_errors=True)
        print(f"building {folder} once...", file=sys.stderr)
        make_project(folder, {"train": {"model": "sklearn_linear", "loader": "opencv"}})
        run_in(folder, "dvc", "repro")
    refresh_code(folder, ("stages", "medimage", "datasets", "dvc.yaml", ".dvc/config"))  # noop_rows repros it
    return folder


def noop_rows(repeat: int, images_per_class: int) -> list[Row]:
    rows = []
    for name, folder, target in (
        ("4 default datasets, all stages", default_project(), []),
        (
            f"{4 * images_per_class:,}-image dataset, to split",
            resplit_speed.project(images_per_class),
            [f"split@{resplit_speed.DATASET}"],
        ),
    ):
        run_in(folder, "dvc", "repro", *target)
        for command in ("status", "repro"):
            seconds = median_seconds(lambda f=folder, c=command, t=target: run_in(f, "dvc", c, *t), repeat)
            limit = 2.0 if command == "status" and not target else 3.0
            rows.append(
                Row(
                    f"no-op `dvc {command}`, {name} (s)",
                    f"dvc {seconds:.2f}",
                    f"limit {limit:.2f}",
                    seconds / limit,
                    "<= 1.0x",
                    seconds <= limit,
                )
            )
    return rows


def report_rows(repeat: int) -> list[Row]:
    """The report stage of each default dataset, run alone on its finished pipeline: the page must stay cheap."""
    folder = default_project()
    run_in(folder, "dvc", "repro")
    rows = []
    for dataset in DEFAULT_DATASETS:
        seconds = median_seconds(lambda d=dataset: run_in(folder, sys.executable, "-m", "stages.report", d), repeat)
        size = (folder / "reports" / f"{dataset}.html").stat().st_size / 1e6
        rows.append(
            Row(
                f"report page, {dataset} ({size:.1f} MB), `python -m stages.report` (s)",
                f"ours {seconds:.2f}",
                "limit 10.00",
                seconds / 10,
                "<= 1.0x",
                seconds <= 10,
            )
        )
    return rows


def bootstrap_rows(repeat: int, images: int = 400, classes: int = 4) -> list[Row]:
    """Evaluate's patient bootstrap of the ROC AUC (1,000 draws): the project's rank AUC against scikit-learn's."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, images)
    probabilities = rng.dirichlet(np.ones(classes), images)
    patients = [str(index // 2) for index in range(images)]

    def scikit_learn_auc(truth: np.ndarray, scores: np.ndarray) -> float:
        return float(np.mean([roc_auc_score(truth == k, scores[:, k]) for k in np.unique(truth)]))

    def interval(metric: Metric) -> float:
        return median_seconds(
            lambda: bootstrap({"roc_auc": metric}, labels, probabilities, patients, 1000, 0.95, 0), repeat
        )

    ours, theirs = interval(macro_roc_auc), interval(scikit_learn_auc)
    label = f"ROC AUC interval, 1,000 patient resamples of {images} test images, {classes} classes (s)"
    return [row(label, ours, "ours", theirs, "roc_auc_score", ours / theirs, 0.2, True)]


# --------------------------------------------------------------------------- 5. training input stall

STALL_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from benchmarks.input_stall import measure
print(json.dumps(measure({folder!r}, {labels!r}, {model!r}, {size})))
"""


def stall_rows(repeat: int) -> list[Row]:
    """The share of each epoch (the first included) the model waits for input, per loader, small CNN at the
    default size and mobilenet_v2 at 224: the worse epoch of the two counts."""
    from benchmarks import input_stall

    folder = input_stall.images()
    rows = []
    for model, size in (("small_cnn", 64), ("mobilenet_v2", 224)):
        script = STALL_SCRIPT.format(
            root=str(Path.cwd()), folder=str(folder), labels=list(loader_speed.LABELS), model=model, size=size
        )
        runs = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", script], check=True, capture_output=True, text=True
                ).stdout.splitlines()[-1]
            )
            for _ in range(repeat)
        ]
        compute = [statistics.median(run["compute"][epoch] for run in runs) for epoch in range(input_stall.EPOCHS)]
        for loader in ("keras", "opencv"):
            epochs = [statistics.median(run[loader][epoch] for run in runs) for epoch in range(input_stall.EPOCHS)]
            stalls = [max(0.0, took - needed) / took for took, needed in zip(epochs, compute, strict=True)]
            worst = max(range(len(stalls)), key=stalls.__getitem__)
            rows.append(
                Row(
                    f"input stall, {model} at {size}, {loader} loader, prepared pixels, worse of epochs 1-2 "
                    "(s; ratio = share waiting)",
                    f"epoch {worst + 1} {epochs[worst]:.2f}",
                    f"compute {compute[worst]:.2f}",
                    stalls[worst],
                    "< 0.05",
                    stalls[worst] < 0.05,
                )
            )
    return rows


def add_rows(repeat: int, images: int = 100_000) -> list[Row]:
    """stages.add on a HAM10000-shaped archive against listing it; the target is seconds beyond the listing."""
    listing, ours = add_speed.measure(repeat, images)
    extra = ours - listing
    return [
        Row(
            f"`stages.add`, {images:,} images + {images:,}-row table, vs `unzip -l` (extra {extra:.1f} s)",
            f"add {ours:.2f}",
            f"unzip -l {listing:.2f}",
            ours / listing,
            "<= 5 s extra",
            extra <= 5,
        )
    ]


def multi_label_rows(repeat: int) -> list[Row]:
    """NIH ChestX-ray14 at its size: add beyond `unzip -l`, the split, restructure multi- against single-label."""
    listing, added, members = multi_label_speed.add_seconds(repeat)
    multi, single = multi_label_speed.split_seconds(repeat)
    restructured, twin, small = multi_label_speed.restructure_seconds(repeat)
    images, patients = multi_label_speed.IMAGES, multi_label_speed.PATIENTS
    return [
        Row(
            f"`stages.add`, NIH stand-in, {members:,} members + {images:,}-row table, vs `unzip -l` "
            f"(extra {added - listing:.1f} s)",
            f"add {added:.2f}",
            f"unzip -l {listing:.2f}",
            added / listing,
            "<= 10 s extra",
            added - listing <= 10,
        ),
        Row(
            f"split of {images:,} images, {patients:,} patients, 14 labels (s) vs the same images single-label",
            f"multi {multi:.2f}",
            f"single {single:.2f}",
            multi / single,
            "<= 30 s",
            multi <= 30,
        ),
        row(
            f"restructure of the NIH stand-in, {small:,} members, multi-label vs single-label (s)",
            restructured,
            "multi",
            twin,
            "single",
            restructured / twin,
            1.1,
            True,
        ),
    ]


def nih_rows(repeat: int) -> list[Row]:
    """NIH's size: each stage's cost per image at 20,000 against 5,000 images (at most 1.25x: linear or better), and
    the projected 112,120-image run and ten-experiment sweep against the user's way. One run (--repeat is not
    used: a run takes about 30 minutes)."""
    measured = nih_scale.measure_sizes([5000, 20000], {5000})
    rows = []
    for runs in nih_scale.runs_of(measured).values():
        first, last = runs[0], runs[-1]
        if len(runs) < 2 or not first.seconds:
            continue
        ratio = last.per_image_ms / first.per_image_ms
        rows.append(
            row(
                f"NIH stand-in, {first.way}: {first.name}, ms per image at 20,000 vs 5,000",
                last.per_image_ms,
                "20k",
                first.per_image_ms,
                "5k",
                ratio,
                1.25,
                True,
            )
        )
    for model in (nih_scale.SMALL[0], nih_scale.LARGE[0]):
        total = nih_scale.projection(measured, model, 10)
        rows.append(
            Row(
                f"NIH 112,120 projected, `dvc repro` + 10 one-epoch experiments, {model} (h) vs the user's way",
                f"ours {total['ours'] / 3600:.1f}",
                f"users {total['users'] / 3600:.1f}",
                total["ours"] / total["users"],
                "-",
                None,
            )
        )
    return rows


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to run")
    parser.add_argument("--images-per-class", type=int, default=5000, help="size of the resplit and noop projects")
    args = parser.parse_args()
    CACHE.mkdir(exist_ok=True)
    measure = {
        "restructure": restructure_rows,
        "add": add_rows,
        "resplit": functools.partial(resplit_rows, images_per_class=args.images_per_class),
        "grouping": grouping_rows,
        "loaders": loader_rows,
        "prepared": prepared_rows,
        "noop": functools.partial(noop_rows, images_per_class=args.images_per_class),
        "report": report_rows,
        "bootstrap": bootstrap_rows,
        "stall": stall_rows,
        "multi_label": multi_label_rows,
        "nih": nih_rows,
    }
    started = time.perf_counter()
    rows: list[Row] = []
    for section in args.only.split(","):
        print(f"[bench] {section}...", file=sys.stderr)
        rows += measure[section](args.repeat)
    print(
        f"\n{date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; "
        f"median of {args.repeat}; {time.perf_counter() - started:,.0f} s in all\n"
    )
    print("| benchmark | ours | baseline | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for item in rows:
        print(
            f"| {item.benchmark} | {item.ours} | {item.baseline} | {item.ratio:.2f} | {item.target} | {MET[item.met]} |"
        )


if __name__ == "__main__":
    main()
