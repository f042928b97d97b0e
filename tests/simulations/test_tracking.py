"""Experiment tracking on a hand-made event stream, read back with TensorBoard's and MLflow's
own readers; the e2e runs are in tests/e2e/test_tracking_e2e.py."""

import importlib.util

import numpy as np
import pytest
from helpers.tracking_logs import mlflow_runs, read_mlflow, read_tensorboard
from PIL import Image

from server.results import RunResult
from simulations.config import Tracking
from simulations.tracking import track
from sites.config import parse
from sites.errors import ConfigError

EVENTS = [
    {"event": "site", "stage": 0, "round": 0, "site": "A", "metrics": {"seed": 7}},
    {"event": "train", "stage": 1, "round": 1, "site": "A", "metrics": {"train_loss": 0.5, "num-examples": 16}},
    {"event": "evaluate", "stage": 1, "round": 1, "site": "A", "metrics": {"dice": 0.25, "dice_per_case": [0.1, 0.4]}},
    {"event": "train", "stage": 1, "round": 2, "site": "A", "metrics": {"train_loss": 0.375, "num-examples": 16}},
    {"event": "matrix", "stage": 1, "round": 2, "site": "A", "metrics": {"dice": 0.625, "auc": 0.75}},
    {"event": "matrix", "stage": 1, "round": 2, "site": "B", "metrics": {"dice": 0.125, "auc": 0.5}},
]


def hand_made_result(scenario) -> RunResult:
    """Four stages of made-up R values for the five sites of ``sequential_sites``."""
    result = RunResult(scenario, "dice")
    for stage in range(4):
        result.add_stage({site: {"dice": 0.125 * (stage + index) / 4} for index, site in enumerate(scenario.site_ids)},
                         {}, {"dice": 0.5 + stage / 8})
    return result


def log_hand_made_run(backend: str, run_dir, scenario) -> RunResult:
    Image.fromarray(np.full((8, 12, 3), 200, dtype=np.uint8)).save(run_dir / "heatmap.png")
    result = hand_made_result(scenario)
    with track(Tracking(backend=backend), run_dir, "dice") as tracking:
        for event in EVENTS:
            tracking.on_event(event)
        tracking.log_results(result, run_dir)
    return result


def read_back(backend: str, run_dir):
    if backend == "tensorboard":
        return read_tensorboard(run_dir / "tensorboard")
    (run,) = mlflow_runs(run_dir / "mlflow")
    assert run.info.status == "FINISHED"
    return read_mlflow(run_dir / "mlflow", run)


@pytest.mark.parametrize("backend", ["tensorboard", "mlflow"])
def test_the_round_metrics_r_the_summary_and_the_figures_are_logged(backend, tmp_path, scenario):
    result = log_hand_made_run(backend, tmp_path, scenario)
    scalars, images = read_back(backend, tmp_path)
    summary = result.summary()
    expected = {
        "train/A/train_loss": {1: 0.5, 2: 0.375}, "train/A/num-examples": {1: 16, 2: 16},
        "evaluate/A/dice": {1: 0.25},
        "R/A": {1: 0.625}, "R/B": {1: 0.125}, "matrix/A/auc": {1: 0.75}, "matrix/B/auc": {1: 0.5},
        "summary/memorizability": {entry["stage"]: entry["memorizability"] for entry in summary["per_stage"]},
        "summary/generalizability": {entry["stage"]: entry["generalizability"] for entry in summary["per_stage"]},
        "summary/bwt": {4: summary["bwt"]}, "summary/forgetting": {4: summary["forgetting"]},
        "summary/pooled/dice": {4: 0.875},
    }
    # Lists (per-case values), the primary metric again under matrix/, and other events are left out.
    assert set(scalars) == set(expected)
    for tag, values in expected.items():
        assert scalars[tag] == pytest.approx(values, rel=1e-6), tag  # TensorBoard keeps float32
    assert images == {"heatmap"}


def test_a_run_that_fails_is_marked_failed_and_a_resumed_run_adds_a_run_to_the_store(tmp_path, scenario):
    log_hand_made_run("mlflow", tmp_path, scenario)
    with pytest.raises(RuntimeError), track(Tracking(backend="mlflow"), tmp_path, "dice") as tracking:
        tracking.on_event(EVENTS[1])
        raise RuntimeError("a site went down")
    first, second = mlflow_runs(tmp_path / "mlflow")
    assert (first.info.status, second.info.status) == ("FINISHED", "FAILED")
    assert read_mlflow(tmp_path / "mlflow", second)[0] == {"train/A/train_loss": {1: 0.5},
                                                          "train/A/num-examples": {1: 16}}


def test_tracking_none_logs_nothing(tmp_path):
    with track(Tracking(), tmp_path, "dice") as tracking:
        assert tracking is None
    assert list(tmp_path.iterdir()) == []


def test_a_backend_that_is_not_installed_is_refused_naming_the_key(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"^tracking\.backend: mlflow is not installed: "
                                          r"pip install 'medsites\[tracking\]'$"):
        parse(Tracking, {"backend": "mlflow"}, "tracking")
