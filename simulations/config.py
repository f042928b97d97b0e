"""The whole run config (``configs/config.yaml`` and its groups) as one typed object."""

import importlib.util
from typing import Any, Literal

from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, field_validator

from server.discovery import DeploymentConfig
from server.replay_config import ReplayConfig
from server.scenario import ScenarioConfig
from sites.config import ConfigModel, invalid
from sites.device import Device, Precision
from sites.faults import FaultConfig
from sites.privacy import Privacy


class Backend(ConfigModel):
    """``backend``: where the sites' Ray actors run.

    Parameters
    ----------
    client_cpus : float
        CPUs Ray gives each site actor; the site's torch uses as many threads.
    round_timeout : float
        Seconds the server waits for a round's replies.
    address : str or None
        ``None``: a private Ray instance on this machine; ``"<host>:<port>"`` of a Ray head node
        (or ``"auto"``): attach to that running cluster (docs/cluster.md).
    client_gpus : float
        GPUs Ray gives each site actor; a fraction lets several sites share one GPU (0.25: four).
    """

    client_cpus: PositiveFloat
    round_timeout: PositiveFloat
    address: str | None = None
    client_gpus: NonNegativeFloat = 0.0


class Tracking(ConfigModel):
    """``tracking``: where the run's metrics and figures are also logged, besides its own files
    (:mod:`simulations.tracking`).

    Parameters
    ----------
    backend : str
        ``none``; ``tensorboard``: event files in ``<run dir>/tensorboard``; ``mlflow``: a local
        MLflow store in ``<run dir>/mlflow`` (SQLite ``mlflow.db`` and ``artifacts/``).
    """

    backend: Literal["none", "tensorboard", "mlflow"] = "none"

    @field_validator("backend")
    @classmethod
    def _installed(cls, backend: str) -> str:
        # Checked here so that a missing library stops the run before its directory is claimed.
        if backend != "none" and importlib.util.find_spec(backend) is None:
            raise invalid("", f"{backend} is not installed: pip install 'medsites[tracking]'")
        return backend


class RunConfig(ConfigModel):
    """A run's resolved config, validated as a whole before anything starts.

    Parameters
    ----------
    scenario : ScenarioConfig
        The timeline.
    task, strategy : dict
        ``_target_`` nodes, built by :func:`sites.tasks.build_task` and
        :func:`strategies.build_strategy`, which check the arguments against the class's own
        model (:func:`sites.config.instantiate`).
    privacy : DPConfig or None
        DP-SGD at every site, or ``None`` (``privacy=off``).
    unlearning : dict
        Built by :func:`server.unlearning.build_unlearning` (its ``_target_`` names the method).
    replay : ReplayConfig
        Where replay of earlier sites comes from.
    backend : Backend
        Where the sites run.
    faults : FaultConfig
        Simulated site faults: crashes and bad replies.
    seed : int
        Seeds data, models, local batches, Flower's node sampling and every Ray worker.
    deployment : DeploymentConfig
        Which node may play which site in a federation of real machines.
    verbose : bool
        Show Flower's and Ray's own logs.
    resume : str or None
        The run directory of a killed run to continue.
    tracking : Tracking
        Experiment tracking (TensorBoard, MLflow).
    device : str
        ``auto``, ``cpu`` or ``cuda``: where the sites' and the server's torch work runs
        (:func:`sites.device.resolve_compute`).
    precision : str
        ``fp32`` or ``bf16`` (bfloat16 autocast of the forward passes, CUDA only).
    evaluate_split : str
        ``test`` | ``validation``: the sites' split every evaluation of the timeline (R[t, j] and
        all that is computed from it) is measured on; ``validation`` for choosing settings.
    """

    scenario: ScenarioConfig
    task: dict[str, Any]
    strategy: dict[str, Any]
    privacy: Privacy
    unlearning: dict[str, Any]
    replay: ReplayConfig
    backend: Backend
    faults: FaultConfig
    seed: NonNegativeInt
    deployment: DeploymentConfig = DeploymentConfig()
    verbose: bool = False
    resume: str | None = None
    tracking: Tracking = Tracking()
    device: Device = "cpu"
    precision: Precision = "fp32"
    evaluate_split: Literal["test", "validation"] = "test"
    dataset: dict[str, Any] | None = None
    data_root: str | None = None
    data_skip_bad: bool = False
    nih_root: str | None = None
    mimic_root: str | None = None
