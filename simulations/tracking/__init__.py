"""Experiment tracking (``tracking=none|tensorboard|mlflow``): a run's per-round site metrics, R
after each stage, its summary and figures, logged to TensorBoard or to a local MLflow store in
the run directory (:mod:`.run_tracking`)."""

from .run_tracking import RunTracking, track
from .tracker import Tracker

__all__ = ["RunTracking", "Tracker", "track"]
