"""A stage SIGKILLed mid-run leaves nothing that looks complete, and `dvc repro` converges.

Each kill lands at a random moment after the stage has started writing (its hidden temporary folder
exists). The random points come from one seed, printed by every test (see it with -s or in a failure's
captured output); KILL_SEED=<seed> replays the same points.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from harness.project import ROOT, digests, environment, git, make_project, registry_entry, run_in

DATASET = "blood_cells"
# Big enough that writing lasts long enough to be hit (2,000 images), small enough for CI.
KILL_PROJECT = {
    "datasets": [DATASET],
    "fetch": {"synthetic": {"images_per_class": 500, "image_size": 32}},
    "split": {"audit_images": 100},
}
# The copy search runs before split writes anything: it would only delay the kill points.
KILL_REGISTRY = {DATASET: registry_entry(DATASET, {"split": {"near_duplicates": "off"}})}
OUTPUT_FOLDERS = ("data", "metrics", "plots", "models")


def seeded_random() -> random.Random:
    """A generator seeded from KILL_SEED, or from a fresh seed that is printed so that the run can be replayed."""
    seed = int(os.environ.get("KILL_SEED") or random.SystemRandom().randrange(2**32))
    print(f"kill points from seed {seed} (replay: KILL_SEED={seed} pytest {__file__})")
    return random.Random(seed)


def kill_when(project: Path, command: list[str], ready: Callable[[], bool], delay: float) -> str:
    """Start `command`, wait for `ready()`, sleep `delay` s and SIGKILL its whole process group; return its output."""
    process = subprocess.Popen(
        command,
        cwd=project,
        env=environment(project),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not ready():
        assert process.poll() is None, f"{command} ended before the kill point:\n{process.stdout.read().decode()}"
        assert time.monotonic() < deadline, f"{command}: kill point never reached"
        time.sleep(0.002)
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)
    output, _ = process.communicate()
    assert process.returncode == -signal.SIGKILL, (
        f"{command} finished before the kill (delay {delay:.3f} s):\n{output.decode()}"
    )
    return output.decode()


def temporary_folder(output: Path) -> Callable[[], bool]:
    """True once a stage has started building `output` (its hidden .tmp-build folder inside it exists)."""
    return lambda: output.is_dir() and any(entry.name.startswith(".tmp-") for entry in os.scandir(output))


def leftovers(project: Path) -> list[str]:
    return [
        path.relative_to(project).as_posix()
        for folder in OUTPUT_FOLDERS
        for path in (project / folder).rglob("*")
        if path.name.startswith((".tmp-", ".resume-"))
    ] + [path.name for path in (project / ".cache" / "temporaries").glob("*")]


def locked_stages(project: Path) -> set[str]:
    lock = project / "dvc.lock"
    return set(yaml.safe_load(lock.read_text())["stages"]) if lock.is_file() else set()


def out_hashes(project: Path) -> dict[str, list]:
    stages = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    return {name: [(out["path"], out["md5"]) for out in stage.get("outs", [])] for name, stage in stages.items()}


def assert_clean(project: Path, target: str) -> None:
    status = run_in(project, "dvc", "status", target)
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    assert leftovers(project) == []


def test_restructure_and_split_killed_at_random_points_converge_to_the_uninterrupted_outputs(tmp_path: Path) -> None:
    reference = make_project(tmp_path / "reference", KILL_PROJECT, KILL_REGISTRY)
    run_in(reference, "dvc", "repro", f"split@{DATASET}")

    project = make_project(tmp_path / "killed", KILL_PROJECT, KILL_REGISTRY)
    rng = seeded_random()
    kills = []
    for stage_name, output in (
        ("restructure", project / "data" / "interim" / DATASET),
        ("split", project / "data" / "processed" / DATASET),
    ):
        for _ in range(2):
            delay = rng.uniform(0.0, 0.25)
            kill_when(project, ["dvc", "repro", f"split@{DATASET}"], temporary_folder(output), delay)
            kills.append((stage_name, round(delay, 3)))
            assert f"{stage_name}@{DATASET}" not in locked_stages(project), (
                f"{stage_name} completed before the kill ({kills})"
            )
            status = run_in(project, "dvc", "status", f"split@{DATASET}")
            assert "up to date" not in status.stdout, f"a killed run looks complete to DVC ({kills}):\n{status.stdout}"
        if stage_name == "restructure":
            run_in(project, "dvc", "repro", f"restructure@{DATASET}")  # move on to killing the next stage

    finished = run_in(project, "dvc", "repro", f"split@{DATASET}")
    assert "Running stage" in finished.stdout
    assert digests(project, *OUTPUT_FOLDERS) == digests(reference, *OUTPUT_FOLDERS), (
        f"outputs differ after kills at {kills}"
    )
    assert out_hashes(project) == out_hashes(reference), f"dvc.lock differs after kills at {kills}"
    assert_clean(project, f"split@{DATASET}")


def test_a_killed_forced_rerun_strands_nothing_and_the_next_repro_brings_back_the_committed_outputs(
    tmp_path: Path,
) -> None:
    """Kill `dvc repro -f` while it writes; the next `dvc repro` sweeps the leftovers and reruns the stage (its
    metrics live in git, `cache: false`, which DVC's run cache does not check out), to the committed bytes."""
    project = make_project(tmp_path / "project", KILL_PROJECT, KILL_REGISTRY)
    run_in(project, "dvc", "repro", f"restructure@{DATASET}")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "restructured")
    output = project / "data" / "interim" / DATASET
    delay = seeded_random().uniform(0.0, 0.25)
    kill_when(project, ["dvc", "repro", "-f", f"restructure@{DATASET}"], temporary_folder(output), delay)
    assert leftovers(project), "the kill left no temporary to clean up (it came too late)"

    restored = run_in(project, "dvc", "repro", f"restructure@{DATASET}")
    assert "Running stage 'restructure@blood_cells'" in restored.stdout, restored.stdout
    assert leftovers(project) == []
    assert run_in(project, "git", "status", "--porcelain").stdout == ""
    assert_clean(project, f"restructure@{DATASET}")


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from medimage.atomic import atomic_dir, atomic_file
with atomic_dir(Path("data/interim/ds")) as building, atomic_file(Path("metrics/ds/eval.json")) as temporary:
    (building / "half.txt").write_text("half")
    temporary.write_text("{")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_temporaries_of_dead_writers_are_swept_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer killed mid-write leaves temporaries the next sweep deletes; a live writer's stay, and so does
    anything in a finished output, whatever it is called (an archive's label `.tmp-cells`, or a name exactly like
    one of ours: temporaries are known by the journal, never by their names)."""
    from medimage.atomic import atomic_dir, sweep_leftovers

    monkeypatch.chdir(tmp_path)
    finished = tmp_path / "data" / "interim" / "done" / "all"
    for label in (".tmp-cells", ".tmp-build-p1-0a1b2c3d", ".tmp-done-ready-0a1b2c3d"):
        (finished / label).mkdir(parents=True)
        (finished / label / "a.png").write_bytes(b"image")
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER], env=environment(ROOT), check=False)
    assert killed.returncode == -signal.SIGKILL
    stranded = sorted(path for path in tmp_path.rglob(".tmp-*") if not path.is_relative_to(finished))
    assert len(stranded) == 2  # the build folder inside the output, the file's temporary beside it
    with atomic_dir(tmp_path / "data" / "interim" / "live") as live:
        assert sorted(sweep_leftovers()) == [path.absolute() for path in stranded]
        assert live.is_dir()
    assert not any(tmp_path.rglob(".tmp-*")) or all(path.is_relative_to(finished) for path in tmp_path.rglob(".tmp-*"))
    assert sorted(path.parent.name for path in finished.rglob("a.png")) == sorted(
        [".tmp-cells", ".tmp-build-p1-0a1b2c3d", ".tmp-done-ready-0a1b2c3d"]
    )
    assert list((tmp_path / ".cache" / "temporaries").iterdir()) == []


def test_a_killed_writer_not_yet_reaped_counts_as_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A zombie (ended, not yet waited for) still answers kill(pid, 0): its temporaries must be swept all the same.
    A killed stage's zombie outlived its kill by up to 2 s here and left a .tmp-view folder in a re-split."""
    from medimage.atomic import sweep_leftovers

    monkeypatch.chdir(tmp_path)
    script = (
        "import os, sys; from pathlib import Path; from medimage.atomic import temporary_dir\n"
        "with temporary_dir(Path('data'), 'view') as staging:\n"
        "    print(staging, flush=True); sys.stdin.readline(); os._exit(0)"
    )
    Path("data").mkdir()
    ended = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment(ROOT)
    )
    staging = Path(ended.stdout.readline().strip())
    ended.stdin.write("\n")
    ended.stdin.flush()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{ended.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child never ended"
        time.sleep(0.01)
    os.kill(ended.pid, 0)  # no error: to kill(), a zombie is alive
    assert sweep_leftovers() == [staging.absolute()]
    ended.wait()


def test_a_rerun_replaces_the_earlier_output_only_once_complete(tmp_path: Path) -> None:
    from medimage.atomic import atomic_dir

    destination = tmp_path / "out"
    with atomic_dir(destination) as building:
        (building / "a.txt").write_text("first")
    try:
        with atomic_dir(destination) as building:
            (building / "b.txt").write_text("half")
            raise RuntimeError("killed")
    except RuntimeError:
        pass
    assert sorted(path.name for path in destination.iterdir()) == ["a.txt"]
    with atomic_dir(destination) as building:
        (building / "c.txt").write_text("second")
    assert sorted(path.name for path in destination.iterdir()) == ["c.txt"]
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


TRAIN_PROJECT = {
    "datasets": ["brain_tumor"],
    "fetch": {"synthetic": {"images_per_class": 12, "image_size": 32}},
    # no early stopping (the val split would allow it): the kill must land before the last epoch
    "train": {"image_size": 32, "epochs": 8, "batch_size": 8, "early_stopping_patience": 100},
}


def completed_epochs(backup: Path) -> int:
    try:
        return json.loads((backup / "train" / "training_metadata.json").read_text())["epoch"]
    except (OSError, ValueError):
        return 0


def test_training_killed_mid_run_resumes_from_its_last_epoch(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", TRAIN_PROJECT)
    run_in(project, "dvc", "repro", "split@brain_tumor")
    backup = project / "models" / ".resume-brain_tumor"
    epochs = TRAIN_PROJECT["train"]["epochs"]
    rng = seeded_random()
    kill_after = rng.randint(1, epochs - 3)
    delay = rng.uniform(0.0, 0.3)
    kill_when(project, ["dvc", "repro", "train@brain_tumor"], lambda: completed_epochs(backup) >= kill_after, delay)
    model = project / "models" / "brain_tumor"
    assert not model.exists() or not any(path.is_file() for path in model.iterdir()), "a killed training left a model"
    done_before = completed_epochs(backup)
    assert done_before >= kill_after

    resumed = run_in(project, "dvc", "repro", "evaluate@brain_tumor")
    assert f"train: resuming after epoch {done_before} of {epochs}" in resumed.stdout, resumed.stdout
    assert resumed.stdout.count("Epoch ") == epochs - done_before, resumed.stdout  # only the missing epochs ran
    summary = json.loads((project / "models" / "brain_tumor" / "train.json").read_text())
    assert summary["epochs"] == epochs
    curve = (
        (project / "plots" / "brain_tumor" / "training" / "plots" / "metrics" / "train" / "loss.tsv")
        .read_text()
        .splitlines()[1:]
    )
    assert [int(line.split("\t")[0]) for line in curve] == list(range(epochs)), curve  # one curve across the kill
    assert (project / "metrics" / "brain_tumor" / "eval.json").is_file()
    assert_clean(project, "evaluate@brain_tumor")


def test_a_backup_made_for_other_params_is_discarded_not_resumed(tmp_path: Path) -> None:
    from medimage.modelling.resume import prepare

    backup = tmp_path / ".resume-x"
    assert prepare(backup, "params-a") is False
    (backup / "train").mkdir()
    assert prepare(backup, "params-a") is True
    assert prepare(backup, "params-b") is False
    assert not (backup / "train").exists()


def test_curve_points_logged_after_the_last_backup_are_dropped_before_resuming(tmp_path: Path) -> None:
    from medimage.modelling.resume import epochs_completed, trim_curves

    backup = tmp_path / ".resume-x"
    (backup / "train").mkdir(parents=True)
    (backup / "train" / "training_metadata.json").write_text('{"epoch": 3, "batch": 0}')
    assert epochs_completed(backup) == 3
    table = backup / "training" / "plots" / "metrics" / "train" / "loss.tsv"
    table.parent.mkdir(parents=True)
    table.write_text("step\tloss\n" + "".join(f"{step}\t0.{step}\n" for step in range(5)))
    trim_curves(backup / "training", epochs_completed(backup))
    assert table.read_text() == "step\tloss\n0\t0.0\n1\t0.1\n2\t0.2\n"

    (backup / "train.done.json").write_text('{"epochs": 6, "last_epoch": 6}')
    (backup / "fine_tune").mkdir()
    (backup / "fine_tune" / "training_metadata.json").write_text('{"epoch": 8, "batch": 0}')
    assert epochs_completed(backup) == 8  # the fine-tuning phase counts on from the first


def test_a_backup_cut_short_by_a_kill_falls_back_to_the_previous_epoch(tmp_path: Path) -> None:
    """A kill inside the weights write leaves an .h5 whose superblock ends before its objects (seen in CI:
    "addr overflow ... eoa = 2048"); h5py reports it as RuntimeError, not the OSError on which Keras falls back to
    the previous checkpoint."""
    import keras
    import numpy as np

    from medimage.modelling.fitting import EpochBackup

    def model() -> keras.Model:
        net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        net.compile(optimizer="adam", loss="mse")
        return net

    data = (np.ones((8, 4), np.float32), np.zeros((8, 2), np.float32))
    first = model()
    keep = EpochBackup(str(tmp_path), double_checkpoint=True, delete_checkpoint=False)
    first.fit(*data, epochs=2, verbose=0, callbacks=[keep])
    latest = tmp_path / "latest.weights.h5"
    assert (tmp_path / "latest.weights.h5.bkp").is_file()
    written = bytearray(latest.read_bytes())
    written[40:48] = (2048).to_bytes(8, "little")  # the superblock's end of file, as HDF5 left it when killed
    latest.write_bytes(written)
    resumed = model()
    keep = EpochBackup(str(tmp_path), double_checkpoint=True, delete_checkpoint=False)
    assert resumed.fit(*data, epochs=3, verbose=0, callbacks=[keep]).epoch == [1, 2]  # from the epoch before
