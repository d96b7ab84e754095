"""train and evaluate under real DVC and real TensorFlow, on tiny synthetic data."""

from __future__ import annotations

import csv
import json
import os
import struct
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from harness.emulation import AVX2_ONLY_CPUS, CPU_FEATURES, ONEDNN_DEFAULT, QEMU, probe, run_stage_on, unpinned
from harness.project import digests, environment, git, make_project, run_in, update_yaml

EVAL_KEYS = {
    "threshold",
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "roc_auc",
    "roc_auc_ci_low",
    "roc_auc_ci_high",
    "sensitivity",
    "specificity",
    "ece",
    "brier",
    "train_accuracy",
    "generalization_gap",
}
TINY = {
    "datasets": ["chest_xray"],
    "fetch": {"synthetic": {"images_per_class": 24, "image_size": 48}},
    "split": {"ratios": {"train": 0.7, "val": 0.15, "test": 0.15}},
    "train": {"image_size": 32, "epochs": 2, "batch_size": 16},
}
BLOCK_TENSORFLOW = "import sys; sys.modules.update(dict.fromkeys(['tensorflow', 'keras', 'tf_keras']))"


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project", TINY)


def flat_keys(data: dict, prefix: str = "") -> set[str]:
    """Metric keys as `dvc metrics show` prints them: nested keys joined with dots."""
    found = set()
    for key, value in data.items():
        found |= flat_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"}
    return found


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_pipeline_end_to_end_deterministic_and_diffable(tiny: Path) -> None:
    run_in(tiny, "dvc", "repro")
    metrics = read(tiny / "metrics" / "chest_xray" / "eval.json")
    assert set(metrics) == EVAL_KEYS
    assert metrics["roc_auc_ci_low"] <= metrics["roc_auc"] <= metrics["roc_auc_ci_high"]
    report = read(tiny / "metrics" / "chest_xray" / "eval_report.json")
    assert set(report["per_class"]) == {"NORMAL", "PNEUMONIA"}
    assert set(report["per_class"]["NORMAL"]) == {"precision", "recall", "f1", "support", "sensitivity", "specificity"}
    point = report["operating_point"]
    assert point["positive_class"] == "PNEUMONIA" and point["rule"].startswith("Youden's J")  # chosen on val
    assert point["at_threshold"]["sensitivity"] == metrics["sensitivity"] and point["threshold"] == metrics["threshold"]
    confusion = (tiny / "plots" / "chest_xray" / "confusion.csv").read_text().splitlines()[1:]
    agreeing = sum(actual == predicted for actual, predicted in (line.split(",") for line in confusion))
    assert metrics["accuracy"] == pytest.approx(agreeing / len(confusion), abs=1e-4)  # one operating point
    assert set(point["at_0.5"]) == {"sensitivity", "specificity", "ppv", "npv"}
    assert report["confidence_intervals"]["method"].startswith("percentile bootstrap, 1000 resamples")
    calibration = (tiny / "plots" / "chest_xray" / "calibration.csv").read_text()
    assert calibration.startswith("bin,confidence,accuracy,images\n")
    assert metrics["generalization_gap"] == pytest.approx(metrics["train_accuracy"] - metrics["accuracy"], abs=1e-3)
    assert read(tiny / "models" / "chest_xray" / "labels.json") == ["NORMAL", "PNEUMONIA"]
    assert (tiny / "models" / "chest_xray" / "model.keras").stat().st_size > 0
    curves = tiny / "plots" / "chest_xray" / "training" / "plots" / "metrics"
    assert {path.name for path in curves.rglob("*.tsv")} >= {"loss.tsv", "accuracy.tsv"}
    assert any("val" in path.as_posix() for path in curves.rglob("*.tsv"))  # validation curves: there is a val split
    assert (tiny / "plots" / "chest_xray" / "confusion.csv").read_text().startswith("actual,predicted\n")
    assert (tiny / "plots" / "chest_xray" / "misclassified.png").read_bytes()[:4] == b"\x89PNG"
    assert (tiny / "plots" / "chest_xray" / "gradcam.png").read_bytes()[:4] == b"\x89PNG"
    for name, header in (("roc.csv", "class,fpr,tpr\n"), ("precision_recall.csv", "class,recall,precision\n")):
        rows = (tiny / "plots" / "chest_xray" / name).read_text()
        assert rows.startswith(header) and "\nNORMAL," in rows and "\nPNEUMONIA," in rows  # a curve per class
    declared = json.loads(run_in(tiny, "dvc", "metrics", "show", "--json").stdout)
    files = next(iter(declared.values()))["data"]
    keys = {name: flat_keys(content["data"]) for name, content in files.items()}
    assert set(keys) == {f"metrics/chest_xray/{stage}.json" for stage in ("restructure", "split", "eval")}
    assert all(len(found) <= 15 for found in keys.values()), keys  # headline numbers only
    assert len(set().union(*keys.values())) <= 50
    assert not any(label in key for found in keys.values() for key in found for label in ("NORMAL", "PNEUMONIA", "val"))
    shown = json.loads(run_in(tiny, "dvc", "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown.get("errors")  # the templates in .dvc/plots/ are found and filled
    plots = set(shown["data"])
    assert {f"plots/chest_xray/{name}" for name in ("roc.csv", "gradcam.png", "misclassified.png")} <= plots
    titles = json.dumps(shown["data"]["plots/chest_xray/precision_recall.csv"])
    assert "chest_xray - precision-recall" in titles and '"field": "class"' in titles

    predicted = predict_in(tiny, tiny / "data" / "processed" / "chest_xray" / "test", "--cam", "cams", check=True)
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    test_images = sorted((tiny / "data" / "processed" / "chest_xray" / "test").rglob("*.jpeg"))
    assert [Path(line["path"]).name for line in lines] == [path.name for path in test_images]
    threshold = read(tiny / "metrics" / "chest_xray" / "eval.json")["threshold"]
    with (tiny / "metrics" / "chest_xray" / "test_predictions.csv").open(newline="") as handle:
        evaluated = {Path(row["path"]).name: row["predicted"] for row in csv.DictReader(handle)}
    for line in lines:
        assert set(line["probabilities"]) == {"NORMAL", "PNEUMONIA"}
        assert sum(line["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert line["threshold"] == threshold and line["positive"] == "PNEUMONIA"
        assert line["label"] == ("PNEUMONIA" if line["probabilities"]["PNEUMONIA"] >= threshold else "NORMAL")
        assert (tiny / line["cam"]).read_bytes()[:4] == b"\x89PNG"
    assert {Path(line["path"]).name: line["label"] for line in lines} == evaluated  # the labels evaluated

    first = (tiny / "metrics" / "chest_xray" / "eval.json").read_text()
    model_bytes = digests(tiny / "models" / "chest_xray")
    run_in(tiny, "dvc", "repro", "-f", "-s", "train@chest_xray")
    assert digests(tiny / "models" / "chest_xray") == model_bytes  # same weights, same bytes: no timestamps
    assert "Running stage" not in run_in(tiny, "dvc", "repro").stdout  # so evaluate is not rerun
    run_in(tiny, "dvc", "repro", "-f", "-s", "evaluate@chest_xray")
    assert (tiny / "metrics" / "chest_xray" / "eval.json").read_text() == first  # train.deterministic: same bytes

    git(tiny, "add", "-A")
    git(tiny, "commit", "-q", "-m", "baseline")
    run_in(tiny, "dvc", "exp", "run", "-S", "train.model=sklearn_linear")
    diff = json.loads(run_in(tiny, "dvc", "metrics", "diff", "--json").stdout)
    changed = diff["metrics/chest_xray/eval.json"]
    assert "accuracy" in changed and changed["accuracy"]["old"] == json.loads(first)["accuracy"]
    assert (tiny / "models" / "chest_xray" / "model.joblib").is_file()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares its size and holds no pixels: what a decoder sizes its buffer by."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def without_tensorflow(project: Path, module: str, *arguments: str, check: bool = True):
    run = f"sys.argv = ['{module}', *{list(arguments)!r}]; runpy.run_module('stages.{module}', run_name='__main__')"
    return run_in(project, sys.executable, "-c", f"{BLOCK_TENSORFLOW}; import runpy; {run}", check=check)


def predict_in(project: Path, *arguments: str | Path, check: bool = False):
    return run_in(project, sys.executable, "-m", "stages.predict", "chest_xray", *map(str, arguments), check=check)


def test_sklearn_baseline_runs_where_tensorflow_cannot_be_imported(tiny: Path) -> None:
    update_yaml(tiny / "params.yaml", {"train": {"model": "sklearn_linear", "loader": "opencv"}})
    run_in(tiny, "dvc", "repro", "pixels@chest_xray")
    untrained = predict_in(tiny, "x.png")
    assert untrained.returncode == 1 and untrained.stderr.strip().splitlines() == [
        "predict: error: no trained model in models/chest_xray: run train first (dvc repro train@chest_xray)"
    ]
    unknown = run_in(tiny, sys.executable, "-m", "stages.predict", "retina", "x.png", check=False)
    assert unknown.returncode == 1 and unknown.stderr.startswith("predict: error: dataset 'retina' is not listed")
    for stage in ("train", "evaluate"):
        without_tensorflow(tiny, stage, "chest_xray")
    metrics = read(tiny / "metrics" / "chest_xray" / "eval.json")
    assert set(metrics) == EVAL_KEYS and metrics["accuracy"] > 0.6
    assert (tiny / "plots" / "chest_xray" / "gradcam.png").is_file()  # a note: no Grad-CAM for this model

    test_images = sorted((tiny / "data" / "processed" / "chest_xray" / "test").rglob("*.jpeg"))
    (tiny / "notes.jpeg").write_text("not an image")
    (tiny / "empty.png").write_bytes(b"")
    os.mkfifo(tiny / "pipe.png")  # reading it would wait for a writer for ever
    (tiny / "huge.png").write_bytes(png_header(30_000, 30_000))  # decoded, 2.7 GB
    bad = ["notes.jpeg", "empty.png", "/dev/zero", "pipe.png", "huge.png", "scans"]
    (tiny / "scans" / "folder.png").mkdir(parents=True)  # a folder named like an image, found in a folder
    named = [str(test_images[0]), *bad, str(test_images[1])]
    predicted = without_tensorflow(tiny, "predict", "chest_xray", *named, "--cam", "cams", check=False)
    assert predicted.returncode == 1  # files failed ...
    errors = [line for line in predicted.stderr.splitlines() if "error" in line]
    assert errors == [
        "predict: error: notes.jpeg: not a recognised image format (skipped)",
        "predict: error: empty.png: zero-byte file (skipped)",
        "predict: error: /dev/zero: not a regular file, not an image file (skipped)",
        "predict: error: pipe.png: a FIFO, not an image file (skipped)",
        "predict: error: huge.png: more than 400,000,000 pixels: refusing a possible decompression bomb (skipped)",
        "predict: error: scans/folder.png: a folder, not an image file (skipped)",
    ]
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [line["path"] for line in lines] == [named[0], named[-1]]  # ... and the others were still predicted
    assert all(sum(line["probabilities"].values()) == pytest.approx(1, abs=1e-6) for line in lines)
    assert "cam" not in lines[0] and not any((tiny / "cams").iterdir())  # no Grad-CAM for sklearn_linear
    blocked = run_in(tiny, sys.executable, "-c", f"{BLOCK_TENSORFLOW}; import tensorflow", check=False)
    assert blocked.returncode != 0 and "ModuleNotFoundError" in blocked.stderr  # the block is real


def test_mixed_precision_and_xla_train_on_cpu_to_a_sane_model(tiny: Path) -> None:
    update_yaml(
        tiny / "params.yaml",
        {"train": {"mixed_precision": True, "jit_compile": True, "epochs": 4, "augment": {"rotation": 0, "zoom": 0}}},
    )
    run_in(tiny, "dvc", "repro", "evaluate@chest_xray")
    summary = read(tiny / "models" / "chest_xray" / "train.json")
    assert summary["dtype_policy"] == "mixed_float16" and summary["jit_compile"] is True
    import keras

    model = keras.saving.load_model(tiny / "models" / "chest_xray" / "model.keras")
    assert model.layers[-2].compute_dtype == "float16" and model.output.dtype == "float32"  # float32 softmax
    metrics = read(tiny / "metrics" / "chest_xray" / "eval.json")
    curve = (tiny / "plots" / "chest_xray" / "training" / "plots" / "metrics" / "train" / "accuracy.tsv").read_text()
    assert float(curve.split()[-1]) > 0.7  # it learned (chance is ~0.5): Keras' last training epoch, at argmax
    assert (
        set(metrics) == EVAL_KEYS
    )  # (test rates on this tiny set hang on a threshold chosen on a handful of val images)
    assert (tiny / "plots" / "chest_xray" / "gradcam.png").stat().st_size > 1000  # Grad-CAM through float16 maps


def test_imagenet_weights_offline_fail_with_one_line(tiny: Path, tmp_path: Path) -> None:
    update_yaml(tiny / "params.yaml", {"train": {"model": "mobilenet_v2", "weights": "imagenet", "image_size": 96}})
    run_in(tiny, "dvc", "repro", "pixels@chest_xray")
    result = run_in(
        tiny,
        "env",
        f"KERAS_HOME={tmp_path / 'empty-keras-home'}",
        sys.executable,
        "-m",
        "stages.train",
        "chest_xray",
        check=False,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("train: error:")]
    assert len(errors) == 1 and "~/.keras/models/" in errors[0] and "train.weights: null" in errors[0]
    assert "Traceback" not in result.stderr


def test_backbones_get_their_own_preprocessing_and_grey_becomes_three_channels() -> None:
    import keras

    from medimage.modelling.architectures import BACKBONES, build_model
    from medimage.settings.train import TrainSettings

    pixels = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    layer = BACKBONES["mobilenet_v2"][1]()
    assert np.allclose(layer(pixels), keras.applications.mobilenet_v2.preprocess_input(pixels.copy()), atol=1e-5)
    assert np.allclose(
        BACKBONES["efficientnet_b0"][1]()(pixels), keras.applications.efficientnet.preprocess_input(pixels.copy())
    )
    model, backbone = build_model(TrainSettings(model="efficientnet_b0", image_size=32), classes=3)
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 3)
    assert backbone is not None and not backbone.trainable


def test_a_saved_keras_model_carries_no_timestamp_and_loads_back(tmp_path: Path) -> None:
    import keras

    from medimage.modelling.model_files import save_keras_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    save_keras_model(model, tmp_path / "first.keras")
    time.sleep(2.1)  # zip entry times have a 2-second resolution
    save_keras_model(model, tmp_path / "second.keras")
    assert (tmp_path / "first.keras").read_bytes() == (tmp_path / "second.keras").read_bytes()
    with zipfile.ZipFile(tmp_path / "first.keras") as archive:
        assert "date_saved" not in json.loads(archive.read("metadata.json"))
    loaded = keras.saving.load_model(tmp_path / "first.keras")
    pixels = np.ones((1, 4), np.float32)
    assert np.array_equal(loaded.predict(pixels, verbose=0), model.predict(pixels, verbose=0))


@pytest.mark.skipif(
    QEMU is None and not os.environ.get("CI"),
    reason="qemu-user not installed (make test installs it; under CI its absence fails this test)",
)
def test_deterministic_training_gives_an_avx2_only_cpu_the_same_model(tiny: Path) -> None:
    """train.deterministic: an AVX2-only CPU (QEMU's Haswell: AVX2 and FMA, no AVX-512, no VNNI, other cache sizes)
    trains the model this machine trains, bit for bit.

    On such a CPU TensorFlow's default leaves oneDNN off, and its Eigen kernels give other weights: what the
    models trained on an AVX2-only machine showed before oneDNN was switched on for deterministic runs.
    """
    cpu = AVX2_ONLY_CPUS[0]
    run_in(tiny, "dvc", "repro", "train@chest_xray")
    here = digests(tiny / "models" / "chest_xray")
    run_in(tiny, "env", "TF_ENABLE_ONEDNN_OPTS=0", "dvc", "repro", "-f", "-s", "train@chest_xray")
    assert digests(tiny / "models" / "chest_xray")["model.keras"] != here["model.keras"]  # the kernels do matter

    variables = unpinned(environment(tiny))
    assert probe(cpu, CPU_FEATURES, variables) == ["True", "False"]  # AVX2, and AVX-512 hidden
    assert probe(cpu, ONEDNN_DEFAULT, variables)[-1] == "False"  # TensorFlow's own choice there: Eigen
    run_stage_on(cpu, tiny, variables, "train", "chest_xray")
    assert digests(tiny / "models" / "chest_xray") == here


def test_onednn_is_pinned_for_deterministic_float32_models_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """float16 convolutions have no oneDNN kernel at or below AVX2 on CPUs with AMX: capped, training died there."""
    from medimage.modelling.determinism import ONEDNN_ISA_VARIABLE, ONEDNN_SWITCH_VARIABLE, pin_cpu_kernels

    cases = ((True, False, ("1", "AVX2")), (True, True, (None, None)), (False, False, (None, None)))
    for deterministic, float16, expected in cases:
        for variable in (ONEDNN_SWITCH_VARIABLE, ONEDNN_ISA_VARIABLE):
            monkeypatch.setenv(variable, "placeholder")
            monkeypatch.delenv(variable)
        pin_cpu_kernels(deterministic, float16)
        assert (os.environ.get(ONEDNN_SWITCH_VARIABLE), os.environ.get(ONEDNN_ISA_VARIABLE)) == expected
    monkeypatch.setenv(ONEDNN_SWITCH_VARIABLE, "0")
    monkeypatch.setenv(ONEDNN_ISA_VARIABLE, "AVX512_CORE")
    pin_cpu_kernels(True, False)
    assert (os.environ[ONEDNN_SWITCH_VARIABLE], os.environ[ONEDNN_ISA_VARIABLE]) == ("0", "AVX512_CORE")  # user wins
