"""predict: run a dataset's trained model (models/<ds>/) on image files or folders of images.

Not a DVC stage: a command for new images. Writes one JSON line per image to stdout,
{"path": ..., "label": ..., "probabilities": {"<label>": p, ...}}, in the order given (a folder's images,
searched recursively, sorted by path). The label is decided as evaluate decides: for two classes at the threshold
evaluate chose on val (metrics/<ds>/eval.json; the line carries it, with the positive class), else the most
probable class; for a multi-label set every label is decided at the threshold evaluate chose for it on val
(metrics/<ds>/eval_report.json): "label" joins the labels present by |, "decisions" gives each. A file that
cannot be read as an image (empty, a folder, a FIFO or a device, a header past the pixel limit, not an image)
gets one line on stderr and the others are still predicted; the exit status is then 1. With --cam DIR, Keras
models also write a Grad-CAM overlay per image to DIR/<position>-<name>.png (its path is added to the JSON line
as "cam"). The sklearn_linear model needs no TensorFlow.

    python -m stages.predict chest_xray scan.jpeg more-scans/ --cam overlays/
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from medimage.archives import dicom
from medimage.archives.validation import IMAGE_SUFFIXES, InvalidImage, file_dimensions
from medimage.decoding import decode_reduced, decode_reduced_bytes
from medimage.errors import PipelineError
from medimage.modelling.classifier import Classifier
from medimage.modelling.families import load_classifier
from medimage.modelling.opencv_loader import model_pixels
from medimage.paths import MODELS_DIR, declared_metrics, metrics_file, metrics_report
from medimage.reporting.clinical import POSITIVE, OperatingPoint
from medimage.reporting.multi_label import LabelThresholds
from medimage.reporting.sheets import write_png
from medimage.settings.files import DatasetEntry
from medimage.settings.restructure import DicomSettings, RestructureParams
from medimage.settings.train import TrainParams
from stages.cli import run_command

log = logging.getLogger(__name__)
SUFFIXES = IMAGE_SUFFIXES | dicom.DICOM_SUFFIXES  # what a folder's files are searched for


class PredictParams(TrainParams, RestructureParams):
    """The model's settings, and restructure.dicom: a .dcm file becomes pixels as the training images did."""


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, help="image files, or folders searched for images")
    parser.add_argument("--cam", type=Path, metavar="DIR", help="write Grad-CAM overlays here (Keras models)")


def image_files(paths: list[Path]) -> Iterator[Path]:
    """Named files as given (whatever their suffix); folders' image files by suffix, recursively, sorted."""
    for path in paths:
        if path.is_dir():
            yield from sorted(found for found in path.rglob("*") if found.suffix.lower() in SUFFIXES)
        else:
            yield path


def read_pixels(path: Path, size: int, settings: DicomSettings) -> np.ndarray:
    """The model's pixels of one file; PipelineError for anything that is not a readable image, checked on its
    header before a pixel is decoded. A DICOM file goes through restructure's conversion first."""
    try:
        if path.is_file() and dicom.is_dicom(path.name, _head(path)):
            converted = dicom.convert(path.read_bytes(), settings)
            data, dimensions = np.frombuffer(converted.png, np.uint8), (converted.width, converted.height)
            image = decode_reduced_bytes(data, dimensions, size, colour=True)
        else:
            dimensions = file_dimensions(path)
            image = decode_reduced(path, dimensions, size, colour=True)
    except InvalidImage as problem:
        raise PipelineError(f"{path}: {problem.detail} (skipped)") from None
    except OSError as error:
        raise PipelineError(f"{path}: cannot read ({error.strerror}) (skipped)") from None
    if image is None:
        raise PipelineError(f"{path}: not an image OpenCV can decode (skipped)")
    return model_pixels(image, size)


def _head(path: Path) -> bytes:
    """The first bytes of a file: where a DICOM file has its DICM magic."""
    with path.open("rb") as handle:
        return handle.read(dicom.PREAMBLE + 4)


Decisions = OperatingPoint | LabelThresholds


def operating_point(dataset: str, classifier: Classifier) -> Decisions:
    """The rule evaluate read its scores at: for two classes the threshold it chose on val (metrics/<ds>/eval.json),
    for a multi-label set each label's (eval_report.json), else the most probable class."""
    classes = len(classifier.class_names)
    if classes != 2 and not classifier.multi_label:
        return OperatingPoint(None, "the most probable class")
    path = metrics_file(dataset, metrics_report("eval") if classifier.multi_label else declared_metrics("eval"))
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        if classifier.multi_label:
            by_label = found["operating_point"]["thresholds"]
            return LabelThresholds([float(by_label[name]) for name in classifier.class_names], [f"{path}"] * classes)
        return OperatingPoint(float(found["threshold"]), f"{path}: threshold")
    except (OSError, ValueError, KeyError, TypeError):
        raise PipelineError(
            f"no decision threshold in {path}: run dvc repro evaluate@{dataset} first (predict decides at the "
            "threshold evaluate chose on val, so that its labels are the ones evaluated)"
        ) from None


def prediction(path: Path, probabilities: np.ndarray, names: list[str], point: Decisions) -> dict:
    scores = {name: round(float(p), 6) for name, p in zip(names, probabilities, strict=True)}
    if isinstance(point, LabelThresholds):  # each label its own decision, at its own threshold
        decided = point.decide(probabilities[np.newaxis])[0]
        decisions = {name: bool(value) for name, value in zip(names, decided, strict=True)}
        label = "|".join(name for name in names if decisions[name])
        thresholds = dict(zip(names, point.thresholds, strict=True))
        return {"path": str(path), "label": label, "probabilities": scores, "decisions": decisions} | {
            "thresholds": thresholds
        }
    label = names[int(point.decide(probabilities[np.newaxis])[0])]
    decided = {} if point.threshold is None else {"threshold": point.threshold, "positive": names[POSITIVE]}
    return {"path": str(path), "label": label, "probabilities": scores} | decided


def predict_files(
    classifier: Classifier,
    paths: Iterator[Path],
    cam: Path | None,
    point: Decisions,
    params: PredictParams,
) -> tuple[int, int]:
    """Print one JSON line per readable image; return (predicted, failed) counts."""
    predicted = failed = 0
    batch: list[tuple[Path, np.ndarray]] = []

    def flush() -> None:
        nonlocal predicted
        pixels = np.stack([pixels for _, pixels in batch])
        probabilities = classifier.probabilities(pixels)
        if not classifier.multi_label:  # one distribution over the classes: float32 sums drift by ~1e-7
            probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
        pictures = []
        if cam is not None and classifier.overlays is not None:  # the decided class; of several labels the likeliest
            shown = probabilities.argmax(axis=1) if classifier.multi_label else point.decide(probabilities)
            pictures = classifier.overlays(pixels, shown)
        for position, (path, _) in enumerate(batch):
            line = prediction(path, probabilities[position], classifier.class_names, point)
            if pictures:
                line["cam"] = str(cam / f"{predicted + 1:05d}-{path.stem}.png")
                write_png(Path(line["cam"]), pictures[position])
            print(json.dumps(line), flush=True)
            predicted += 1
        batch.clear()

    for path in paths:
        try:
            batch.append((path, read_pixels(path, classifier.image_size, params.restructure.dicom)))
        except PipelineError as error:
            print(f"predict: error: {error}", file=sys.stderr)
            failed += 1
        if len(batch) == params.train.batch_size:
            flush()
    if batch:
        flush()
    return predicted, failed


def main(params: PredictParams, dataset: DatasetEntry, args: argparse.Namespace) -> None:
    classifier = load_classifier(MODELS_DIR / dataset.name, params.train)
    point = operating_point(dataset.name, classifier)
    if args.cam is not None:
        if classifier.overlays is None:
            log.warning(
                "--cam: no Grad-CAM for the %s model (no convolutional layers); predicting only", classifier.model
            )
        args.cam.mkdir(parents=True, exist_ok=True)
    predicted, failed = predict_files(classifier, image_files(args.paths), args.cam, point, params)
    if not predicted and not failed:
        raise PipelineError(f"no images found in {', '.join(str(path) for path in args.paths)}")
    log.info("%d image(s) predicted with %s, %d file(s) unreadable", predicted, MODELS_DIR / dataset.name, failed)
    if failed:
        sys.exit(1)  # each unreadable file has had its line on stderr


if __name__ == "__main__":
    run_command("predict", main, __doc__, (PredictParams, DatasetEntry), arguments=arguments)
