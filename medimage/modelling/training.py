"""Fitting each model family: the trainer train calls, kept apart from families.py so that a change to the
training code reruns train and no evaluate. Adding a family: its module in families.py, its trainer here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from medimage.modelling import keras_family, linear
from medimage.modelling.families import Family, family_of
from medimage.modelling.opencv_loader import ImageSet
from medimage.paths import KERAS_MODEL
from medimage.settings.train import TrainSettings

if TYPE_CHECKING:  # the type only: DVCLive is imported by the stage
    from dvclive import Live


class Trainer(Protocol):
    def __call__(
        self, train: ImageSet, val: ImageSet | None, settings: TrainSettings, live: Live, backup: Path, staging: Path
    ) -> dict:
        """Fit on `train` (with its prepared pixels; `val` for early stopping), save the model into `staging`, log
        curves to `live`; what ran (train.json)."""


def fit_keras(
    train: ImageSet, val: ImageSet | None, settings: TrainSettings, live: Live, backup: Path, staging: Path
) -> dict:
    """Train (curves to `live`, epochs backed up in `backup`), write model.keras into `staging`; the summary."""
    from dvclive.keras import DVCLiveCallback

    from medimage.modelling import fitting
    from medimage.modelling.model_files import save_keras_model

    model, summary = fitting.fit(train, val, settings, [DVCLiveCallback(live=live)], backup)
    save_keras_model(model, staging / KERAS_MODEL)
    return summary


TRAINERS: dict[Family, Trainer] = {keras_family: fit_keras, linear: linear.fit_and_save}


def trainer_of(model: str) -> Trainer:
    return TRAINERS[family_of(model)]
