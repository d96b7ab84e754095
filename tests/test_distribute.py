"""Multi-worker training with tf.distribute: two worker processes on loopback ports train one model together."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.project import environment, make_project, run_in, update_yaml
from medimage.errors import PipelineError
from medimage.modelling.cluster import is_chief, task_name

DATASET = "blood_cells"  # learnable in a few epochs at 32 px, so that the two models can be compared
PROJECT = {
    "datasets": [DATASET],
    "fetch": {"synthetic": {"images_per_class": 60, "image_size": 48}},
    "train": {
        "image_size": 48,
        "epochs": 25,
        "batch_size": 8,
        "deterministic": False,
        "augment": {"flip": False, "rotation": 0, "zoom": 0, "contrast": 0},
    },
}


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for probe in sockets:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in sockets]
    for probe in sockets:
        probe.close()
    return ports


def steps_per_epoch(output: str) -> set[int]:
    """The step counts Keras prints at each epoch end ("12/12 - 1s - ...")."""
    return {int(total) for done, total in re.findall(r"(?:^|: )(\d+)/(\d+) - ", output, re.MULTILINE) if done == total}


def step_times(output: str) -> list[int]:
    return [int(milliseconds) for milliseconds in re.findall(r" (\d+)ms/step", output)]


def test_two_workers_train_one_model_that_evaluates_like_a_single_worker_one(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", PROJECT)
    run_in(project, "dvc", "repro", f"pixels@{DATASET}")
    update_yaml(project / "params.yaml", {"train": {"distribute": "multi_worker"}})
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    base = environment(project)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "stages.train", DATASET],
            cwd=project,
            env={
                **base,
                "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(2)
    ]
    try:
        outputs = [process.communicate(timeout=600)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
    for output in outputs:
        assert "multi_worker: 2 replica(s) in sync, global batch 16" in output, output
    assert steps_per_epoch(outputs[0]) == steps_per_epoch(outputs[1]) != set(), outputs  # the same steps, in step
    assert "chief writes the model" in outputs[1]
    summary = json.loads((project / "models" / DATASET / "train.json").read_text())
    assert (
        summary["replicas"] == 2 and summary["global_batch"] == 16 and summary["epochs"] == PROJECT["train"]["epochs"]
    )
    assert not list((project / "models").glob(".resume-*"))  # both backups gone once done

    run_in(project, sys.executable, "-m", "stages.evaluate", DATASET)
    together = json.loads((project / "metrics" / DATASET / "eval.json").read_text())

    update_yaml(
        project / "params.yaml", {"train": {"distribute": "none", "batch_size": 16}}
    )  # the same global batch on one worker
    single = run_in(project, sys.executable, "-m", "stages.train", DATASET).stdout
    print(f"\nstep times, two workers: {step_times(outputs[0])}; one worker: {step_times(single)}")
    run_in(project, sys.executable, "-m", "stages.evaluate", DATASET)
    alone = json.loads((project / "metrics" / DATASET / "eval.json").read_text())
    print(f"test accuracy, two workers: {together['accuracy']:.3f}; one worker: {alone['accuracy']:.3f}")
    assert abs(together["accuracy"] - alone["accuracy"]) <= 0.2, (together, alone)
    assert together["accuracy"] > 0.6 and alone["accuracy"] > 0.6, (
        together,
        alone,
    )  # both learned (4 classes: chance is 0.25)


def test_tf_config_decides_the_chief_and_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = {"worker": ["a:1", "b:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert is_chief("multi_worker") and task_name("multi_worker") == "chief"
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert not is_chief("multi_worker") and task_name("multi_worker") == "worker1"
    assert is_chief("none")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(PipelineError, match="TF_CONFIG is not a TensorFlow cluster spec"):
        is_chief("multi_worker")
    monkeypatch.delenv("TF_CONFIG")
    with pytest.raises(PipelineError, match="TF_CONFIG is not set"):
        is_chief("multi_worker")
