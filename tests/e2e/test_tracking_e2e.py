"""Runs with ``tracking=tensorboard|mlflow``: what the tracker holds, read back with the
libraries' own readers, is what the run wrote to ``metrics.jsonl``, ``matrix.json`` and
``summary.json``, and tracking changes no number."""

import json
from pathlib import Path

import pytest
from conftest import read_json, run_cli
from helpers.tracking_logs import Scalars, mlflow_runs, read_mlflow, read_tensorboard

# Two runs through the CLI: slow (the unit tests read both backends back by default; CI runs these).
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def expected_scalars(run_dir: Path) -> Scalars:
    """What the tracker must hold, from the run's own files: each site's training loss per round,
    R after each stage, and the summary's curves and final figures."""
    expected: Scalars = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "train":
            expected.setdefault(f"train/{event['site']}/train_loss", {})[event["round"]] = \
                event["metrics"]["train_loss"]
    matrix, summary = read_json(run_dir / "matrix.json"), read_json(run_dir / "summary.json")
    for column, site in enumerate(matrix["sites"]):
        expected[f"R/{site}"] = {stage: row[column] for stage, row in enumerate(matrix["R"], start=1)}
    for key in ("memorizability", "generalizability"):
        curve = {entry["stage"]: entry[key] for entry in summary["per_stage"] if entry[key] is not None}
        if curve:
            expected[f"summary/{key}"] = curve
    for key in ("bwt", "forgetting"):
        expected[f"summary/{key}"] = {len(summary["per_stage"]): summary[key]}
    return expected


def assert_tracked(scalars: Scalars, images: set[str], run_dir: Path) -> None:
    for tag, values in expected_scalars(run_dir).items():
        assert scalars.get(tag) == pytest.approx(values, rel=1e-6), tag  # TensorBoard keeps float32
    assert images == {path.stem for path in run_dir.glob("*.png")} >= {"heatmap", "site_curves"}


def test_tensorboard_holds_the_runs_metrics_and_tracking_changes_no_number(fedavg_run, ray_head, tmp_path):
    completed = run_cli("size=smoke", "seed=3", "tracking=tensorboard", f"hydra.run.dir={tmp_path}", ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr
    assert_tracked(*read_tensorboard(tmp_path / "tensorboard"), tmp_path)
    assert read_json(tmp_path / "matrix.json") == read_json(fedavg_run / "matrix.json")


def test_mlflow_holds_the_runs_metrics_in_a_store_in_the_run_directory(ray_head, tmp_path):
    completed = run_cli("size=smoke", "scenario=two_sites", "tracking=mlflow", f"hydra.run.dir={tmp_path}",
                        ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr
    (run,) = mlflow_runs(tmp_path / "mlflow")
    assert (run.info.status, run.info.run_name) == ("FINISHED", tmp_path.name)
    assert_tracked(*read_mlflow(tmp_path / "mlflow", run), tmp_path)
