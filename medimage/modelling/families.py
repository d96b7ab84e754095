"""Model families: every value of train.model and the family that loads and scores it (training.py fits it).

Train, evaluate, predict and the galleries ask `family_of(model)` or the Classifier it loads, and never test a
model by its name. A family is a module with the `load` of `Family` (linear.py, keras_family.py) and a
trainer in training.py; a new Keras architecture is a builder in architectures.py, its name in settings/train.py
and one line in FAMILIES. Nothing here imports TensorFlow: the scikit-learn family runs without. Nothing here
fits either, so that evaluate and predict depend on no training code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from medimage.errors import PipelineError
from medimage.modelling import keras_family, linear
from medimage.modelling.classifier import Classifier
from medimage.paths import LABELS, TRAIN_SUMMARY
from medimage.settings.train import TrainSettings


class Family(Protocol):
    def load(self, model_dir: Path, names: list[str], summary: dict, settings: TrainSettings) -> Classifier:
        """The saved model, ready for pixels and for split folders (read as `settings` say)."""


FAMILIES: dict[str, Family] = {
    "small_cnn": keras_family,
    "mobilenet_v2": keras_family,
    "efficientnet_b0": keras_family,
    "sklearn_linear": linear,
}


def family_of(model: str) -> Family:
    return FAMILIES[model]


def load_classifier(model_dir: Path, settings: TrainSettings) -> Classifier:
    """The model in `model_dir` as train wrote it (its files, labels.json, train.json), whatever its family."""
    files = [model_dir / LABELS, model_dir / TRAIN_SUMMARY]
    if not all(path.is_file() for path in files):
        raise PipelineError(f"no trained model in {model_dir}: run train first (dvc repro train@{model_dir.name})")
    names, summary = (json.loads(path.read_text()) for path in files)
    return family_of(summary["model"]).load(model_dir, names, summary, settings)
