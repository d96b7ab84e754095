"""Every params key refuses a wrong value by name; concurrent runs are locked out; credentials never leak."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from harness.project import ROOT, environment, files_under, make_project
from medimage.errors import PipelineError
from medimage.settings.project import load_params


def leaves(tree: dict, prefix: str = "") -> list[tuple[str, object]]:
    found = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        found += leaves(value, f"{path}.") if isinstance(value, dict) and value else [(path, value)]
    return found


def wrong_values(value: object) -> list[object]:
    """Values of the wrong type (and out of range) for a leaf holding `value`."""
    if isinstance(value, bool):
        return ["sometimes", [1]]
    if isinstance(value, int | float):
        return ["many", -1e12, [value]]
    if isinstance(value, str):
        return [123, "no-such-choice"] if value else [123]
    if isinstance(value, list):
        return ["not a list", [{"x": 1}]]
    if isinstance(value, dict):
        return ["not a mapping", 5]
    return [{"unexpected": "mapping"}, 3.5]  # nulls: imagenet | null and the like


PARAM_LEAVES = leaves(yaml.safe_load((ROOT / "params.yaml").read_text()))


@pytest.mark.parametrize(("key", "value"), PARAM_LEAVES, ids=[key for key, _ in PARAM_LEAVES])
def test_every_params_key_refuses_wrong_values_naming_the_key_and_the_file(
    tmp_path: Path, key: str, value: object
) -> None:
    refused = 0
    for wrong in wrong_values(value):
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        node = params
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = wrong
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        try:
            load_params(tmp_path)
        except PipelineError as error:
            assert "params.yaml" in str(error) and key.split(".")[0] in str(error), str(error)
            assert key in str(error) or key.rsplit(".", 1)[0] in str(error), str(error)
            refused += 1
    assert refused >= 1, f"{key}: no wrong value was refused"


def test_an_unknown_key_is_refused_by_name(tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["split"]["ratio"] = {"train": 0.5}  # a typo of ratios
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(PipelineError, match=r"invalid params.yaml: split.ratio: Extra inputs are not permitted"):
        load_params(tmp_path)


def test_jit_compile_with_augmentation_xla_cannot_compile_is_refused_by_name(tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["jit_compile"] = True  # the default augmentation rotates and zooms
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(PipelineError, match=r"invalid params.yaml: train: jit_compile: true needs augment.rotation: 0"):
        load_params(tmp_path)
    params["train"]["augment"] |= {"rotation": 0, "zoom": 0}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert load_params(tmp_path).train.jit_compile


def test_a_second_dvc_repro_in_the_same_workspace_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "project",
        {"datasets": ["blood_cells"], "fetch": {"synthetic": {"images_per_class": 400, "image_size": 96}}},
    )
    env = environment(project)
    first = subprocess.Popen(
        ["dvc", "repro", "split"], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not (project / "data" / "raw").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the first run is inside its fetch stage, holding DVC's lock
        before = files_under(project / "data")
        second = subprocess.run(
            ["dvc", "repro", "split"], cwd=project, env=env, capture_output=True, text=True, timeout=120
        )
        message = " ".join((second.stdout + second.stderr).split())
        assert second.returncode != 0, message
        # DVC's lock: the whole repo ("Unable to acquire lock") or the stage's outputs ("is busy ... rwlock")
        assert "Unable to acquire lock" in message or ("is busy" in message and ".dvc/tmp/rwlock" in message), message
        assert files_under(project / "data") >= before  # the refused run deleted nothing
    finally:
        output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output
    assert (project / "metrics" / "blood_cells" / "split.json").is_file()


FAKE_KAGGLEHUB = '''
"""A stand-in for kagglehub at its network boundary: 'downloads' by returning an already unpacked folder."""
import os


def dataset_download(handle, **kwargs):
    return os.environ["FAKE_KAGGLE_FOLDER"]
'''
SECRETS = {
    "KAGGLE_USERNAME": "fake-user-7f3a9c",
    "KAGGLE_KEY": "fake-key-0d1e2f3a4b5c6d7e",
    "KAGGLE_API_TOKEN": "KGAT_fake_token_9a8b7c6d",
}


def test_kaggle_credentials_never_reach_any_file_or_log(tmp_path: Path) -> None:
    import zipfile

    from medimage.archives import synthetic
    from medimage.settings.fetch import SyntheticSettings
    from medimage.settings.project import load_dataset, load_params

    params = load_params(ROOT)
    archive = tmp_path / "download.zip"
    synthetic.write_archive(
        load_dataset("chest_xray", params, ROOT), SyntheticSettings(images_per_class=12, image_size=32), archive
    )
    with zipfile.ZipFile(archive) as handle:
        handle.extractall(tmp_path / "kagglehub-cache" / "versions" / "2")
    (tmp_path / "shim" / "kagglehub").mkdir(parents=True)
    (tmp_path / "shim" / "kagglehub" / "__init__.py").write_text(FAKE_KAGGLEHUB)
    project = make_project(
        tmp_path / "project",
        {
            "datasets": ["chest_xray"],
            "fetch": {"source": "kaggle"},
            "train": {"model": "sklearn_linear", "loader": "opencv", "image_size": 32},
        },
    )
    env = environment(
        project,
        **SECRETS,
        PYTHONPATH=f"{tmp_path / 'shim'}{os.pathsep}{project}",
        FAKE_KAGGLE_FOLDER=str(tmp_path / "kagglehub-cache" / "versions" / "2"),
    )
    run = subprocess.run(["dvc", "repro"], cwd=project, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (project / "metrics" / "chest_xray" / "eval.json").is_file()

    scanned = 0
    for path in [p for p in project.rglob("*") if p.is_file() and ".git" not in p.relative_to(project).parts[:1]]:
        data = path.read_bytes()
        scanned += 1
        for name, secret in SECRETS.items():
            assert secret.encode() not in data, f"{name} found in {path}"
    for name, secret in SECRETS.items():
        assert secret not in run.stdout + run.stderr, f"{name} found in the dvc repro log"
    assert (
        scanned > 100
    )  # the raw archive, interim and processed images, .dvc/, dvc.lock, models, metrics, DVCLive files
