"""NIH ChestX-ray14's size, measured: every stage at 5,000, 10,000 and 20,000 images, projected to 112,120.

    python -m benchmarks.nih_scale [--sizes 5000,10000,20000] [--mobilenet-sizes 5000] [--deterministic]

The stand-in has NIH's layout: 1024x1024 grey PNGs (about 380 KB each, the real ones average 400 KB) named
`<patient>_<follow-up>.png` in `images_0NN/images/`, `Data_Entry_2017.csv` and both official lists; each size
is built once into .benchmarks-cache/ (13 GB for the three, 11 minutes on 2 cores). Each size then runs
as a real project: `add`'s work on the archive, then `dvc repro -s` of fetch, restructure, split, pixels and
train (one epoch of the small CNN at 64, and of mobilenet_v2 at 224 with its own pixels), each stage timed
with DVC's hashing and caching included. Beside it, what a user does without us: `unzip`, a script that sorts
the images into label folders (hardlinks, each image's first finding), `split-folders` (copies), and
`image_dataset_from_directory` decoding every source PNG in every epoch of every experiment.

Training runs with train.deterministic off (as the user's way does) unless --deterministic. Cost per image flat
or falling across sizes means linear: the projection adds to the largest run the marginal cost per image
between the two largest runs for the rest of 112,120. mobilenet_v2's slow epochs run at --mobilenet-sizes only,
projected from one size (an upper bound). Disk is each output's apparent size; the footprints count hardlinked
files once. A size's folders are deleted after it is measured: the largest needs about 4x its archive on disk
beside the cached archives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.add_speed import versus_listing
from benchmarks.common import CACHE, arguments, seconds
from benchmarks.multi_label_speed import IMAGES, REAL_SCALE, nih_entry
from harness.project import make_project, run_in, update_yaml
from medimage.archives.synthetic import write_archive
from medimage.settings.fetch import SyntheticSettings

NIH = "nih_chest_xray"
SIDE = 1024
SMALL, LARGE = ("small_cnn", 64), ("mobilenet_v2", 224)


def stand_in(images: int) -> Path:
    """The NIH-layout archive of about `images` 1024x1024 PNGs, built once."""
    archive = CACHE / f"nih-{SIDE}px-{images}.zip"
    if not archive.exists():
        CACHE.mkdir(exist_ok=True)
        partial = archive.with_suffix(".partial")
        per_class = round(images * REAL_SCALE / IMAGES)
        write_archive(nih_entry(), SyntheticSettings(images_per_class=per_class, image_size=SIDE), partial)
        partial.rename(archive)
    return archive


@dataclass
class Step:
    """One timed step at one size: seconds, and the bytes of what it leaves on disk (apparent size)."""

    name: str
    way: str  # "ours" or "users"
    once: bool  # made once per dataset (True) or again in every experiment (False)
    seconds: float
    images: int
    disk: int = 0
    model: str | None = None  # the model it serves; None: every model

    @property
    def per_image_ms(self) -> float:
        return 1000 * self.seconds / self.images


def apparent_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def footprint(folder: Path) -> int:
    """Bytes on disk under `folder`, a hardlinked file counted once (`du`)."""
    return int(subprocess.run(["du", "-sb", str(folder)], check=True, capture_output=True, text=True).stdout.split()[0])


def repro(project: Path, stage: str) -> float:
    return seconds(lambda: run_in(project, "dvc", "repro", "-s", f"{stage}@{NIH}"))


def image_count(project: Path) -> int:
    with (project / "data" / "processed" / NIH / "manifest.csv").open() as handle:
        return sum(1 for _ in handle) - 1


def our_steps(archive: Path, project: Path, mobilenet: bool, deterministic: bool) -> list[Step]:
    """add's work, then each stage by `dvc repro -s`, in a fresh project reading the archive as a local path."""
    _, added = versus_listing(archive, 1)
    make_project(
        project,
        {
            "datasets": [NIH],
            "fetch": {"source": "path", "paths": {NIH: str(archive)}},
            "train": {"model": SMALL[0], "image_size": SMALL[1], "epochs": 1, "deterministic": deterministic},
        },
    )
    data = project / "data"
    outputs = {
        "fetch": data / "raw" / f"{NIH}.zip",
        "restructure": data / "interim" / NIH,
        "split": data / "processed" / NIH,
        "pixels": data / "pixels" / NIH,
        "train": project / "models" / NIH,
    }
    timed = [(name, repro(project, name), None) for name in ("fetch", "restructure", "split")]
    for model, size in (SMALL, LARGE) if mobilenet else (SMALL,):
        update_yaml(project / "params.yaml", {"train": {"model": model, "image_size": size}})
        timed += [(name, repro(project, name), model) for name in ("pixels", "train")]
    images = image_count(project)
    steps = [Step("add", "ours", True, added, images)]
    for name, took, model in timed:
        label = f"{name}, {model} at {dict((SMALL, LARGE))[model]}" if model else name
        steps.append(Step(label, "ours", name != "train", took, images, apparent_bytes(outputs[name]), model))
    steps.append(Step("project footprint: cache and workspace", "ours", True, 0.0, images, footprint(project)))
    return steps


EPOCH_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import keras
from benchmarks.input_stall import epoch_seconds
from medimage.settings.train import TrainSettings
settings = TrainSettings(model={model!r}, image_size={size}, epochs=1, deterministic=False)
data = keras.utils.image_dataset_from_directory(
    {folder!r}, image_size=({size}, {size}), batch_size=settings.batch_size, color_mode="rgb", verbose=False)
print(epoch_seconds(data.prefetch(-1), {classes}, settings)[0])
"""


def sort_by_label(unzipped: Path, out: Path) -> None:
    """The user's script: each image hardlinked into a folder named after its first finding."""
    import csv

    found = {path.name: path for path in unzipped.glob("images_*/images/*.png")}
    with (unzipped / "Data_Entry_2017.csv").open(newline="") as handle:
        for record in csv.DictReader(handle):
            label = record["Finding Labels"].split("|")[0]
            (out / label).mkdir(parents=True, exist_ok=True)
            os.link(found[record["Image Index"]], out / label / record["Image Index"])


def user_steps(archive: Path, scratch: Path, images: int, mobilenet: bool) -> list[Step]:
    """unzip, sort into label folders, split-folders (80/10/10), then an epoch from image_dataset_from_directory
    over the train folder: per image of the whole set, as ours (which also runs the val pass)."""
    import splitfolders

    unzipped, by_label, split = scratch / "unzipped", scratch / "by_label", scratch / "split"
    scratch.mkdir(parents=True)
    unzip = seconds(lambda: subprocess.run(["unzip", "-q", str(archive), "-d", str(unzipped)], check=True))
    steps = [
        Step("unzip", "users", True, unzip, images, apparent_bytes(unzipped)),
        Step(
            "sort into label folders, hardlinks",
            "users",
            True,
            seconds(lambda: sort_by_label(unzipped, by_label)),
            images,
        ),
    ]
    took = seconds(lambda: splitfolders.ratio(str(by_label), output=str(split), seed=1337, ratio=(0.8, 0.1, 0.1)))
    steps.append(Step("split-folders, copies", "users", True, took, images, apparent_bytes(split)))
    classes = sum(1 for _ in (split / "train").iterdir())
    for model, size in (SMALL, LARGE) if mobilenet else (SMALL,):
        script = EPOCH_SCRIPT.format(
            root=str(Path.cwd()), folder=str(split / "train"), model=model, size=size, classes=classes
        )
        epoch = float(
            subprocess.run(
                [sys.executable, "-c", script], check=True, capture_output=True, text=True
            ).stdout.splitlines()[-1]
        )
        steps.append(Step(f"train epoch, {model} at {size}", "users", False, epoch, images, model=model))
    steps.append(Step("footprint: unzipped, sorted, split", "users", True, 0.0, images, footprint(scratch)))
    return steps


def measure(size: int, mobilenet: bool, deterministic: bool = False) -> list[Step]:
    archive = stand_in(size)
    folder = CACHE / f"nih-scale-{size}"
    shutil.rmtree(folder, ignore_errors=True)
    try:
        steps = our_steps(archive, folder / "project", mobilenet, deterministic)
        return steps + user_steps(archive, folder / "users", steps[0].images, mobilenet)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def hours(value: float) -> str:
    return f"{value / 3600:.1f} h" if value >= 3600 else f"{value / 60:.0f} min"


def projected_seconds(runs: list[Step]) -> float:
    """One step's seconds at 112,120 images from its runs (smallest first): the largest run plus the marginal cost
    per image between the two largest runs for the rest (what a fixed cost such as TensorFlow's start does not
    grow); from one run, its cost per image times 112,120 (an upper bound where there is a fixed cost)."""
    last = runs[-1]
    if len(runs) == 1:
        return IMAGES * last.seconds / last.images
    before = runs[-2]
    marginal = max(0.0, (last.seconds - before.seconds) / (last.images - before.images))
    return last.seconds + marginal * (IMAGES - last.images)


def runs_of(measured: dict[int, list[Step]]) -> dict[tuple[str, str], list[Step]]:
    """Each step's runs, smallest size first."""
    runs: dict[tuple[str, str], list[Step]] = {}
    for size in sorted(measured):
        for step in measured[size]:
            runs.setdefault((step.way, step.name), []).append(step)
    return runs


def projection(measured: dict[int, list[Step]], model: str, experiments: int) -> dict[str, float]:
    """Seconds for 112,120 images of each way: what is made once, plus `experiments` one-epoch trainings."""
    totals = {"ours": 0.0, "users": 0.0}
    for (way, _), runs in runs_of(measured).items():
        if runs[-1].model in (None, model) and runs[-1].seconds:
            totals[way] += projected_seconds(runs) * (1 if runs[-1].once else experiments)
    return totals


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--sizes", default="5000,10000,20000", help="stand-in sizes, images")
    parser.add_argument("--mobilenet-sizes", default="5000", help="sizes at which mobilenet_v2 epochs run too")
    parser.add_argument(
        "--deterministic", action="store_true", help="train with params' default train.deterministic: true"
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    mobilenet = {int(size) for size in args.mobilenet_sizes.split(",")}
    print(table(measure_sizes(sizes, mobilenet, args.deterministic)))


def measure_sizes(sizes: list[int], with_mobilenet: set[int], deterministic: bool = False) -> dict[int, list[Step]]:
    measured = {}
    for size in sizes:
        print(f"[nih] {size:,} images...", file=sys.stderr)
        measured[size] = measure(size, size in with_mobilenet, deterministic)
    return measured


def table(measured: dict[int, list[Step]]) -> str:
    sizes = sorted(measured)
    lines = [
        f"\nNIH-layout stand-in, 1024x1024 PNGs; ms per image at each size ({', '.join(f'{s:,}' for s in sizes)}),"
        " disk at the largest, projected time for 112,120\n",
        "| way | step | " + " | ".join(f"ms/image at {size:,}" for size in sizes) + " | disk | projected 112,120 |",
        "|---|---|" + "---|" * (len(sizes) + 2),
    ]
    for (way, name), runs in runs_of(measured).items():
        by_size = {size: step for size in sizes for step in measured[size] if (step.way, step.name) == (way, name)}
        cells = [
            f"{by_size[size].per_image_ms:.2f}" if size in by_size and by_size[size].seconds else "-" for size in sizes
        ]
        last = runs[-1]
        disk = f"{last.disk / 1e9:.2f} GB" if last.disk else "-"
        projected = hours(projected_seconds(runs)) if last.seconds else "-"
        bound = " (one size: at most)" if len(runs) == 1 and last.seconds else ""
        lines.append(f"| {way} | {name} | " + " | ".join(cells) + f" | {disk} | {projected}{bound} |")
    lines += ["", "| 112,120 images, projected | ours | users | users' time / ours |", "|---|---|---|---|"]
    for model in (SMALL[0], LARGE[0]):
        if not any(step.model == model for steps in measured.values() for step in steps):
            continue
        for experiments in (1, 10):
            total = projection(measured, model, experiments)
            lines.append(
                f"| `dvc repro` and {experiments} one-epoch experiment{'s' * (experiments > 1)}, {model} | "
                f"{hours(total['ours'])} | {hours(total['users'])} | {total['users'] / total['ours']:.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
