"""Does deterministic training give every x86-64 CPU with AVX2 the same model? Trains each dataset here and on
QEMU's emulated AVX2-only CPUs, with the project's choice of CPU kernels and with TensorFlow's own default there.

    python -m benchmarks.cross_machine [--datasets chest_xray] [--cpus Haswell,EPYC-Rome] [--epochs 2]

Needs the default's split data (`make run`, or `dvc repro split@<dataset>`) and qemu-user (`make test-tools`). An
emulated training takes about 40 times as long as here (chest_xray with its 20 epochs: about 9 minutes), so
--epochs shortens every run alike. Prints a markdown table: the model's sha256, whether it equals this machine's,
the first epoch whose training loss differs, and the time against this machine's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import CACHE, arguments
from harness.emulation import AVX2_ONLY_CPUS, CPU_FEATURES, ONEDNN_DEFAULT, probe, run_stage_on, unpinned
from harness.project import DEFAULT_DATASETS, ROOT, environment, file_digest, update_yaml
from medimage.paths import MODELS_DIR, PLOTS_DIR

CODE = ("stages", "medimage", "datasets", "params.yaml", "dvc.yaml")
LOSS_CURVE = Path("training/plots/metrics/train/loss.tsv")


@dataclass(frozen=True)
class Run:
    cpu: str | None  # None: this machine
    onednn: str  # "pinned" (the project's choice) or TensorFlow's default on that CPU, "on" or "off"


@dataclass(frozen=True)
class Trained:
    model: str  # sha256 of model.keras
    losses: list[str]  # the training loss by epoch, as DVCLive wrote it
    seconds: float


def scratch_project(folder: Path, epochs: int | None) -> Path:
    """The current code with the data of this checkout hard-linked in (nothing is copied or changed there)."""
    if not (ROOT / "data" / "processed").is_dir():
        raise SystemExit("no split data here: run `make run` (or `dvc repro split@<dataset>`) first")
    for name in CODE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, folder / name)
    shutil.copytree(ROOT / "data", folder / "data", copy_function=os.link)
    if epochs is not None:
        update_yaml(folder / "params.yaml", {"train": {"epochs": epochs}})
    return folder


def tensorflow_default(cpu: str | None) -> str:
    """Whether TensorFlow turns oneDNN on by itself on `cpu` (only where it finds VNNI, BF16 or AMX units)."""
    return "on" if probe(cpu, ONEDNN_DEFAULT)[-1] == "True" else "off"


def train(project: Path, run: Run, dataset: str) -> Trained:
    env = unpinned(environment(project))
    if run.onednn != "pinned":
        env["TF_ENABLE_ONEDNN_OPTS"] = "1" if run.onednn == "on" else "0"
    start = time.perf_counter()
    run_stage_on(run.cpu, project, env, "train", dataset)
    seconds = time.perf_counter() - start
    curve = (project / PLOTS_DIR / dataset / LOSS_CURVE).read_text().splitlines()[1:]
    losses = [line.split("\t")[-1] for line in curve]
    return Trained(file_digest(project / MODELS_DIR / dataset / "model.keras"), losses, seconds)


def first_difference(ours: list[str], theirs: list[str]) -> str:
    parted = next((epoch for epoch, (a, b) in enumerate(zip(ours, theirs, strict=False), 1) if a != b), None)
    if parted is None and len(ours) == len(theirs):
        return "-"
    return str(parted or min(len(ours), len(theirs)) + 1)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--datasets", default=",".join(DEFAULT_DATASETS[:1]), help="comma-separated")
    parser.add_argument("--cpus", default=",".join(AVX2_ONLY_CPUS), help="QEMU CPU models (qemu-x86_64 -cpu help)")
    parser.add_argument("--epochs", type=int, default=None, help="train.epochs for every run (default: params.yaml)")
    options = parser.parse_args()
    cpus = [cpu for cpu in options.cpus.split(",") if cpu]
    print(
        "| dataset | CPU | AVX2, AVX-512 | TensorFlow's oneDNN default | oneDNN in the run | model.keras sha256 "
        "| same model as here | first epoch whose loss differs | time / here |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    CACHE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        project = scratch_project(Path(scratch), options.epochs)
        for dataset in options.datasets.split(","):
            here = train(project, Run(None, "pinned"), dataset)
            for cpu in [None, *cpus]:
                features = " / ".join("yes" if word == "True" else "no" for word in probe(cpu, CPU_FEATURES))
                default = tensorflow_default(cpu)
                runs = [Run(cpu, "pinned")] + ([Run(cpu, default)] if cpu and default == "off" else [])
                for run in runs:
                    trained = here if run == Run(None, "pinned") else train(project, run, dataset)
                    onednn = "on (pinned, AVX2)" if run.onednn == "pinned" else f"{run.onednn} (TensorFlow's default)"
                    print(
                        f"| {dataset} | {cpu or 'this machine'} | {features} | {default} | {onednn} "
                        f"| {trained.model[:12]} | {'yes' if trained.model == here.model else '**no**'} "
                        f"| {first_difference(here.losses, trained.losses)} | {trained.seconds / here.seconds:.0f}x |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
