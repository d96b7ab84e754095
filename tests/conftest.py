from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from stages.config import DatasetSpec, Params, load_dataset, load_params

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
REALDATA = SHARED / "realdata"
# What a fresh clone holds that the pipeline needs: copied into temporary projects by the DVC tests.
PROJECT_FILES = ["dvc.yaml", "params.yaml", "datasets", "stages", ".dvc/config", ".dvcignore", ".gitignore"]


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(ROOT)


@pytest.fixture(scope="session")
def registry(params: Params) -> dict[str, DatasetSpec]:
    return {name: load_dataset(name, params, ROOT) for name in params.datasets}


def jpeg_bytes(size: tuple[int, int] = (24, 32), value: int = 128, channels: int = 1) -> bytes:
    shape = (size[0], size[1]) if channels == 1 else (size[0], size[1], channels)
    image = np.full(shape, value, np.uint8)
    image[: size[0] // 2] = 255 - value
    return cv2.imencode(".jpg", image)[1].tobytes()


def png_bytes(size: tuple[int, int] = (24, 32), value: int = 90) -> bytes:
    return cv2.imencode(".png", np.full(size, value, np.uint8))[1].tobytes()


def write_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def files_under(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


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


GIT_IDENTITY = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid", "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, env={**os.environ, **GIT_IDENTITY})


def run_in(cwd: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command in a project copy with this venv's python and dvc first on PATH."""
    env = {**os.environ, **GIT_IDENTITY, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(cwd)}
    result = subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def stage(cwd: Path, module: str, dataset: str) -> subprocess.CompletedProcess[str]:
    return run_in(cwd, sys.executable, "-m", f"stages.{module}", dataset, check=False)


@pytest.fixture
def small_project(tmp_path: Path) -> Path:
    """A project copy whose synthetic archives are tiny."""
    return make_project(tmp_path / "project", {"fetch": {"synthetic": {"images_per_class": 8, "image_size": 32}}})
