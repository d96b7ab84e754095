"""Collaboration: a DVC remote over a real SSH server (push, fresh clone, pull, nothing to rerun) and a queued sweep."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from harness.project import digests, git, make_project, run_in
from harness.sshd import SSHD, running_sshd

DATASET = "brain_tumor"
TINY = {
    "datasets": [DATASET],
    "fetch": {"synthetic": {"images_per_class": 10, "image_size": 32}},
    "train": {"image_size": 32, "epochs": 2},
}
OUTPUTS = ("data", "models", "metrics", "plots")

needs_sshd = pytest.mark.skipif(
    SSHD is None and not os.environ.get("CI"),
    reason="sshd not installed (make test installs openssh-server; under CI its absence fails this test)",
)


def timed(project: Path, *command: str) -> tuple[float, str]:
    start = time.perf_counter()
    result = run_in(project, *command)
    return time.perf_counter() - start, result.stdout


@needs_sshd
def test_push_to_an_ssh_remote_then_a_fresh_clone_pulls_everything_and_reruns_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = make_project(tmp_path / "alice", TINY)
    run_in(alice, "dvc", "repro")
    with running_sshd(tmp_path / "sshd") as server:
        home = tmp_path / "home"  # a clean HOME whose known_hosts trusts only this server's throw-away host key
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "known_hosts").write_text(server.known_hosts.read_text())
        monkeypatch.setenv("HOME", str(home))
        storage = tmp_path / "storage"
        run_in(alice, "dvc", "remote", "add", "--default", "team", server.url(storage))
        run_in(alice, "dvc", "remote", "modify", "--local", "team", "keyfile", str(server.key))  # never in git
        git(alice, "add", "-A")  # dvc.lock, .dvc/config, and the metrics and plot data DVC keeps in git
        git(alice, "commit", "-q", "-m", "pipeline run; team remote")
        push_seconds, pushed = timed(alice, "dvc", "push")
        stored = [path for path in storage.rglob("*") if path.is_file()]
        assert len(stored) > 50, pushed  # images, manifests, the model, metrics and plots

        bob = tmp_path / "bob"
        git(tmp_path, "clone", "-q", str(alice), str(bob))
        assert not (bob / "data").exists()
        assert "keyfile" not in (bob / ".dvc" / "config").read_text()
        run_in(bob, "dvc", "remote", "modify", "--local", "team", "keyfile", str(server.key))
        pull_seconds, pulled = timed(bob, "dvc", "pull")
    print(f"\nssh remote: push {push_seconds:.1f} s, pull {pull_seconds:.1f} s, {len(stored)} files on the server")

    status = run_in(bob, "dvc", "status")
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    repro = run_in(bob, "dvc", "repro")
    assert "Running stage" not in repro.stdout, repro.stdout
    view = Path("data") / "processed" / DATASET / "train"
    assert not (bob / view).exists()  # DVC tracks the split manifest; the split folders are a view of interim files
    assert "rebuilt the split folders" in run_in(bob, sys.executable, "-m", "stages.view", DATASET).stdout
    assert digests(bob, *OUTPUTS) == digests(alice, *OUTPUTS)
    assert "Running stage" not in run_in(bob, "dvc", "repro").stdout  # the view changes nothing DVC tracks


def test_a_queued_sweep_runs_two_experiments_and_shows_audit_and_eval_metrics_side_by_side(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "project", {**TINY, "train": {**TINY["train"], "model": "sklearn_linear", "loader": "opencv"}}
    )
    run_in(project, "dvc", "repro")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "baseline")
    for seed in (1, 2):
        run_in(project, "dvc", "exp", "run", "--queue", "-S", f"split.seed={seed}", "-S", "split.strategy=pool")
    run_in(project, "dvc", "queue", "start", "--jobs", "2")
    deadline = time.monotonic() + 420
    while True:
        queue = run_in(project, "dvc", "queue", "status").stdout
        if not any(state in queue for state in ("Queued", "Running")):
            break
        assert time.monotonic() < deadline, queue
        time.sleep(2)
    assert "Failed" not in queue, queue + run_in(project, "dvc", "queue", "logs", queue.split()[0], check=False).stdout

    shown = json.loads(run_in(project, "dvc", "exp", "show", "--json").stdout)
    experiments = [
        revision["data"]
        for commit in shown
        for experiment in commit.get("experiments") or []
        for revision in experiment["revs"]
        if revision.get("data")
    ]
    assert len(experiments) == 2, json.dumps(shown)[:2000]
    seeds = set()
    for data in experiments:
        seeds.add(data["params"]["params.yaml"]["data"]["split"]["seed"])
        metrics = data["metrics"]
        assert "accuracy" in metrics[f"metrics/{DATASET}/eval.json"]["data"]
        assert "shift_auc" in metrics[f"metrics/{DATASET}/split.json"]["data"]
    assert seeds == {1, 2}
    table = run_in(project, "dvc", "exp", "show", "--no-pager", "--md").stdout
    assert "accuracy" in table and "shift_auc" in table
