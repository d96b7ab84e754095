"""The one harness that tests and benchmarks share: throw-away project copies, git, and running commands in them.

Commands run with this virtual environment's python and dvc first on PATH, a fixed git identity, the project
on PYTHONPATH, and CI unset (stages would otherwise log warnings only; tests read their progress lines).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
REALDATA = SHARED / "realdata"
DEFAULT_DATASETS: list[str] = yaml.safe_load((ROOT / "params.yaml").read_text())["datasets"]  # the pipeline's own
REGISTERED_DATASETS = sorted(path.stem for path in (ROOT / "datasets").glob("*.yaml"))  # ham10000 too: not run
# What a fresh clone holds that the pipeline needs: copied into temporary projects by the DVC tests.
PROJECT_FILES = [
    "dvc.yaml",
    "params.yaml",
    "datasets",
    "stages",
    "medimage",
    ".dvc/config",
    ".dvc/plots",
    ".dvc/offline_plots.html",
    ".dvcignore",
    ".gitignore",
]
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def environment(project: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment for a command run in `project`; `extra` variables on top."""
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env |= GIT_IDENTITY
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    if project is not None:
        env["PYTHONPATH"] = str(project)
    return env | extra


def make_project(target: Path, params_update: dict | None = None, datasets: dict[str, dict] | None = None) -> Path:
    """A throw-away copy of the project (a git repo with one commit), with params and registry entries changed."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, destination)
    update_yaml(target / "params.yaml", params_update or {})
    for name, spec in (datasets or {}).items():
        (target / "datasets" / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    git(target, "init", "-q")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "project")
    return target


def registry_entry(name: str, update: dict) -> dict:
    """datasets/<name>.yaml with `update` merged in: for make_project's `datasets`, where params.yaml cannot reach
    (a registry entry's split keys override params.yaml's)."""
    entry = yaml.safe_load((ROOT / "datasets" / f"{name}.yaml").read_text())
    _merge(entry, update)
    return entry


def update_yaml(path: Path, update: dict) -> None:
    data = yaml.safe_load(path.read_text())
    _merge(data, update)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _merge(base: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, env=environment())


def run_in(cwd: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command in a project copy; AssertionError with its output when `check` and it fails."""
    result = subprocess.run(list(command), cwd=cwd, env=environment(cwd), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def stage(cwd: Path, module: str, dataset: str) -> subprocess.CompletedProcess[str]:
    """One stage run by hand (`python -m stages.<module> <dataset>`), not checked."""
    return run_in(cwd, sys.executable, "-m", f"stages.{module}", dataset, check=False)


def files_under(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(root: Path, *folders: str) -> dict[str, str]:
    """sha256 of every file under `root` (or under each of its `folders`), keyed by the path relative to `root`."""
    return {
        path.relative_to(root).as_posix(): file_digest(path)
        for folder in folders or (".",)
        for path in sorted((root / folder).rglob("*"))
        if path.is_file()
    }
