"""Simulated site failures: seeded crashes, a run that goes on without the crashed sites, a stage
retried when no site trained, and a clear stop when retries run out."""

import json

import numpy as np
import pytest

from conftest import read_json, run_cli
from sites.config import parse
from sites.errors import ConfigError
from sites.faults import FaultConfig


@pytest.mark.parametrize("config, key", [
    ({"crash_prob": 1.5}, "faults.crash_prob"),
    ({"crash_prob": "often"}, "faults.crash_prob"),
    ({"stage_retries": -1}, "faults.stage_retries"),
    ({"crash_probability": 0.1}, "faults"),
])
def test_bad_fault_settings_name_their_key(config, key):
    with pytest.raises(ConfigError) as raised:
        parse(FaultConfig, config, "faults")
    assert raised.value.key == key


def test_crashes_are_seeded_per_site_and_call_at_the_configured_rate():
    faults = FaultConfig(crash_prob=0.3)
    draws = np.array([[faults.crashes(7, site, call) for call in range(1, 2001)] for site in range(3)])
    assert abs(draws.mean() - 0.3) < 0.03
    assert (draws == np.array([[faults.crashes(7, site, call) for call in range(1, 2001)] for site in range(3)])).all()
    assert (draws[0] != draws[1]).any()
    assert not any(FaultConfig().crashes(7, 0, call) for call in range(1, 200))


def _events(run_dir, kind):
    return [e for e in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if e["event"] == kind]


@pytest.mark.e2e
def test_a_run_goes_on_without_crashed_sites_and_records_every_failure(ray_head, tmp_path):
    run_dir = tmp_path / "run"
    done = run_cli("size=smoke", "faults.crash_prob=0.5", "scenario.rounds_per_stage=2", f"hydra.run.dir={run_dir}",
                   ray_head=ray_head)
    assert done.returncode == 0, done.stderr[-2000:]
    failures = _events(run_dir, "failure")
    assert failures, "seed 0 at crash_prob 0.5 crashes some calls"
    summary, report = read_json(run_dir / "summary.json"), (run_dir / "report.md").read_text()
    assert [{k: f[k] for k in ("stage", "round", "site", "reason")} for f in failures] == \
        [{k: f[k] for k in ("stage", "round", "site", "reason")} for f in summary["failures"]]
    assert f"{len(failures)} training call(s) failed" in report
    stages = read_json(run_dir / "matrix.json")["stages"]
    for failure in failures:
        assert failure["site"] in stages[failure["stage"] - 1] and "simulated crash" in failure["reason"]
    trained = _events(run_dir, "train")
    assert {(e["stage"], e["round"], e["site"]) for e in trained}.isdisjoint(
        {(f["stage"], f["round"], f["site"]) for f in failures})
    # a stage whose site crashed in every round was run again
    for retry in _events(run_dir, "retry"):
        assert any(e["stage"] == retry["stage"] for e in trained)


@pytest.mark.e2e
def test_a_stage_no_site_can_train_is_retried_then_the_run_stops_with_a_clear_message(ray_head, tmp_path):
    run_dir = tmp_path / "run"
    done = run_cli("size=smoke", "faults.crash_prob=1", "faults.stage_retries=1", f"hydra.run.dir={run_dir}",
                   ray_head=ray_head)
    assert done.returncode == 2
    assert "stage 1: no site (A) completed a training round in 2 attempts" in done.stderr
    assert len(_events(run_dir, "retry")) == 1 and len(_events(run_dir, "failure")) == 2
    assert not (run_dir / "matrix.json").exists()
