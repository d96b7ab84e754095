"""What evaluate reads: params.yaml `evaluate` (operating point, intervals, calibration) besides `train`."""

from __future__ import annotations

from pydantic import Field

from medimage.settings.files import StageParams, Strict
from medimage.settings.split import SplitSettings
from medimage.settings.train import TrainSettings


class EvaluateSettings(Strict):
    target_sensitivity: float | None = Field(None, gt=0, le=1)  # two classes: threshold for this val sensitivity
    bootstrap_resamples: int = Field(1000, ge=100, le=100_000)  # resamples of patients for the confidence intervals
    confidence_level: float = Field(0.95, gt=0.5, lt=1)
    calibration_bins: int = Field(10, ge=2, le=100)  # equal-width bins of top-class probability (ECE, reliability)
    seed: int = Field(42, ge=0, lt=2**32)  # NumPy, TensorFlow and scikit-learn take 32 bits


class EvaluateParams(StageParams):
    split: SplitSettings = SplitSettings()  # link: how a missing view is rebuilt
    train: TrainSettings = TrainSettings()  # the model's input: its size, its loader
    evaluate: EvaluateSettings = EvaluateSettings()
