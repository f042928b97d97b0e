"""Reading back what a run logged for TensorBoard or MLflow, with the libraries' own readers:
``{tag: {step: value}}`` and the names of the logged images."""

from pathlib import Path

from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from simulations.tracking.mlflow_tracker import EXPERIMENT, store_uri

Scalars = dict[str, dict[int, float]]


def read_tensorboard(log_dir: Path) -> tuple[Scalars, set[str]]:
    """Every scalar and image tag of the event files in ``log_dir``."""
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    return ({tag: {event.step: event.value for event in events.Scalars(tag)} for tag in tags["scalars"]},
            set(tags["images"]))


def mlflow_runs(store: Path) -> list:
    """The MLflow runs of the local store in ``store``, oldest first."""
    client = MlflowClient(tracking_uri=store_uri(store))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def read_mlflow(store: Path, run) -> tuple[Scalars, set[str]]:
    """Every metric's history of ``run`` and the stems of its ``figures/`` artifacts."""
    client = MlflowClient(tracking_uri=store_uri(store))
    run_id = run.info.run_id
    scalars = {key: {metric.step: metric.value for metric in client.get_metric_history(run_id, key)}
               for key in run.data.metrics}
    return scalars, {Path(artifact.path).stem for artifact in client.list_artifacts(run_id, "figures")}
