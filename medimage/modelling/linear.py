"""The scikit-learn family (train.model sklearn_linear): HOG and coarse-look features (OpenCV) into a logistic
regression, saved as model.joblib.

For users who may not use TensorFlow: this module, the OpenCV loader and evaluate's scikit-learn path
import no TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import joblib
import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from medimage.decoding import coarse_look
from medimage.modelling import opencv_loader
from medimage.modelling.classifier import Classifier
from medimage.settings.train import TrainSettings

if TYPE_CHECKING:  # the type only: evaluate and predict need no DVCLive
    from dvclive import Live

HOG_WINDOW = 64  # HOG on the image resized to 64x64 grey
HOG = cv2.HOGDescriptor((HOG_WINDOW, HOG_WINDOW), (16, 16), (8, 8), (8, 8), 9)
MODEL_FILE = "model.joblib"
# strong L2 regularisation: a few thousand HOG features against a few hundred images per class
REGRESSION = {"C": 0.05, "max_iter": 3000}


def image_features(pixels: np.ndarray) -> np.ndarray:
    """HOG of the 64x64 grey image plus its 16x16 coarse look, for one RGB float image in [0, 255]."""
    grey = cv2.cvtColor(pixels.astype(np.uint8), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (HOG_WINDOW, HOG_WINDOW), interpolation=cv2.INTER_AREA)
    return np.concatenate([HOG.compute(grey).ravel(), coarse_look(grey)])


def features(images: opencv_loader.ImageSet, settings: TrainSettings) -> np.ndarray:
    """Feature rows for a whole split, a batch at a time (the pixels are never all in memory)."""
    rows = [
        image_features(pixels)
        for batch, _ in opencv_loader.batches(
            images, settings.image_size, settings.batch_size, threads=settings.threads
        )
        for pixels in batch
    ]
    return np.array(rows, dtype=np.float32)


def regression(settings: TrainSettings) -> Pipeline:
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(**REGRESSION, class_weight=settings.class_weight, random_state=settings.seed),
    )


class PerLabel:
    """A multi-label set's model: one logistic regression per label, fitted on the images whose value of that
    label is known; a label that is all one value there gets that constant. `predict_proba` gives each label's
    probability of being present, images x labels, as the Keras sigmoid outputs do."""

    def __init__(self, settings: TrainSettings) -> None:
        # the unfitted pipeline, not the settings: a pydantic model pickles a set, whose order varies run to run
        self.template = regression(settings)
        self.models: list[Pipeline | float] = []

    def fit(self, rows: np.ndarray, labels: np.ndarray) -> PerLabel:
        for column in labels.T:
            known = ~np.isnan(column)
            values = column[known].astype(int)
            if len(np.unique(values)) < 2:
                self.models.append(float(values[0]) if len(values) else 0.5)
            else:
                self.models.append(clone(self.template).fit(rows[known], values))
        return self

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        columns = [
            np.full(len(rows), model) if isinstance(model, float) else model.predict_proba(rows)[:, 1]
            for model in self.models
        ]
        return np.stack(columns, axis=1) if columns else np.zeros((len(rows), 0))

    def score(self, rows: np.ndarray, labels: np.ndarray) -> float:
        """The share of known label values decided right at 0.5."""
        known = ~np.isnan(labels)
        return float(np.mean((self.predict_proba(rows) >= 0.5)[known] == (labels[known] == 1)))


def save(model: Pipeline | PerLabel, folder: Path) -> None:
    joblib.dump(model, folder / MODEL_FILE)


# --------------------------------------------------------------------------- the trainer and the family's load


def fit_and_save(
    images: opencv_loader.ImageSet,
    val: opencv_loader.ImageSet | None,
    settings: TrainSettings,
    live: Live,
    backup: Path,
    staging: Path,
) -> dict:
    """Fit on the train split (one pass: no epochs to back up, no early stopping on `val`) and write model.joblib
    into `staging`."""
    rows = features(images, settings)
    model = (PerLabel(settings) if images.multi_label else regression(settings)).fit(rows, images.labels)
    save(model, staging)
    live.log_metric("accuracy", float(model.score(rows, images.labels)))
    return {"epochs": 1} | ({"multi_label": True} if images.multi_label else {})


def load(model_dir: Path, names: list[str], summary: dict, settings: TrainSettings) -> Classifier:
    pipeline = joblib.load(model_dir / MODEL_FILE)

    def probabilities(pixels: np.ndarray) -> np.ndarray:
        return pipeline.predict_proba(np.array([image_features(one) for one in pixels]))

    def split_probabilities(images: opencv_loader.ImageSet) -> np.ndarray:
        return pipeline.predict_proba(features(images, settings))

    return Classifier(
        summary["model"],
        names,
        summary["image_size"],
        probabilities,
        split_probabilities,
        None,
        summary.get("multi_label", False),
    )
