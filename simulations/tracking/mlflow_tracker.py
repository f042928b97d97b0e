"""An MLflow run in a local store: SQLite metadata (MLflow's recommended local backend) and a
folder of artifacts, both inside the run directory."""

import logging
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

from mlflow.entities import Metric, RunStatus
from mlflow.tracking import MlflowClient

from .tracker import Tracker

# The experiment every medsites run is logged under.
EXPERIMENT = "medsites"


def store_uri(store: Path) -> str:
    """The tracking URI of the SQLite store in folder ``store`` (``mlflow ui --backend-store-uri``)."""
    return f"sqlite:///{(store / 'mlflow.db').resolve()}"


class MLflowTracker(Tracker):
    """Scalars as MLflow metrics, images as artifacts under ``figures/``.

    Parameters
    ----------
    store : Path
        The folder of the store: ``mlflow.db`` and ``artifacts/``. A resumed run adds a new
        MLflow run to the store it finds there.
    run_name : str
        The MLflow run's name.
    """

    def __init__(self, store: Path, run_name: str) -> None:
        # MLflow announces each table it creates at INFO, and its SQL store uses a loader SQLAlchemy
        # 2.1 deprecates: both would break into the progress display and concern no user of ours.
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mlflow\.")
        store.mkdir(parents=True, exist_ok=True)
        self._client = MlflowClient(tracking_uri=store_uri(store))
        experiment = self._client.get_experiment_by_name(EXPERIMENT)
        experiment_id = (experiment.experiment_id if experiment is not None else
                         self._client.create_experiment(EXPERIMENT,
                                                        artifact_location=(store / "artifacts").resolve().as_uri()))
        self._run_id = self._client.create_run(experiment_id, run_name=run_name).info.run_id

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        self._client.log_batch(self._run_id, metrics=[Metric(key, float(value), now, step)
                                                      for key, value in scalars.items()])

    def log_image(self, path: Path) -> None:
        self._client.log_artifact(self._run_id, str(path), artifact_path="figures")

    def close(self, finished: bool) -> None:
        status = RunStatus.FINISHED if finished else RunStatus.FAILED
        self._client.set_terminated(self._run_id, status=RunStatus.to_string(status))
