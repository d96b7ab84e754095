"""The scikit-learn family (train.model sklearn_linear): HOG and thumbnail features (OpenCV) into a logistic
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
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from medimage.decoding import thumbnail
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
    """HOG of the 64x64 grey image plus a 16x16 thumbnail, for one RGB float image in [0, 255]."""
    grey = cv2.cvtColor(pixels.astype(np.uint8), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (HOG_WINDOW, HOG_WINDOW), interpolation=cv2.INTER_AREA)
    return np.concatenate([HOG.compute(grey).ravel(), thumbnail(grey)])


def features(images: opencv_loader.ImageSet, settings: TrainSettings) -> np.ndarray:
    """Feature rows for a whole split, decoded a batch at a time (the pixels are never all in memory)."""
    rows = [
        image_features(pixels)
        for batch, _ in opencv_loader.batches(
            images, settings.image_size, settings.batch_size, threads=settings.threads
        )
        for pixels in batch
    ]
    return np.array(rows, dtype=np.float32)


def train(images: opencv_loader.ImageSet, settings: TrainSettings) -> Pipeline:
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(**REGRESSION, class_weight=settings.class_weight, random_state=settings.seed),
    )
    model.fit(features(images, settings), images.labels)
    return model


def save(model: Pipeline, folder: Path) -> None:
    joblib.dump(model, folder / MODEL_FILE)


# --------------------------------------------------------------------------- the trainer and the family's load


def fit_and_save(
    processed: Path, names: list[str], settings: TrainSettings, live: Live, backup: Path, staging: Path
) -> dict:
    """Fit on the train split (one pass: no epochs to back up) and write model.joblib into `staging`."""
    images = opencv_loader.image_set(processed, "train", names)
    model = train(images, settings)
    save(model, staging)
    live.log_metric("accuracy", float(model.score(features(images, settings), images.labels)))
    return {"epochs": 1}


def load(model_dir: Path, names: list[str], summary: dict, settings: TrainSettings) -> Classifier:
    pipeline = joblib.load(model_dir / MODEL_FILE)

    def probabilities(pixels: np.ndarray) -> np.ndarray:
        return pipeline.predict_proba(np.array([image_features(one) for one in pixels]))

    def split_probabilities(images: opencv_loader.ImageSet, folder: Path) -> np.ndarray:
        return pipeline.predict_proba(features(images, settings))

    return Classifier(summary["model"], names, summary["image_size"], probabilities, split_probabilities, None)
