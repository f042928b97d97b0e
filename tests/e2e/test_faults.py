"""Simulated site faults: seeded crashes, a run that goes on without the crashed sites, a stage
retried when no site trained, and a clear stop when retries run out; seeded bad replies, and
invalid ones (NaN, mis-shaped) that never reach aggregation."""

import json

import numpy as np
import pytest
import torch
from conftest import build_scenario, load_config, read_json, run_cli

from simulations.run import check_faults
from sites.config import parse
from sites.errors import ConfigError
from sites.faults import FaultConfig
from sites.spec import SiteSpec


@pytest.mark.parametrize("config, key", [
    ({"crash_prob": 1.5}, "faults.crash_prob"),
    ({"crash_prob": "often"}, "faults.crash_prob"),
    ({"stage_retries": -1}, "faults.stage_retries"),
    ({"crash_probability": 0.1}, "faults"),
    ({"bad_reply_prob": -0.1}, "faults.bad_reply_prob"),
    ({"bad_reply": "zeros"}, "faults.bad_reply"),
    ({"bad_reply_scale": 0}, "faults.bad_reply_scale"),
    ({"bad_reply_sites": "B"}, "faults.bad_reply_sites"),
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


def test_bad_replies_are_seeded_per_site_and_call_apart_from_crashes_and_only_at_the_named_sites():
    sites = [SiteSpec(id=name, name=name, index=index) for index, name in enumerate("ABC")]
    faults = FaultConfig(crash_prob=0.3, bad_reply_prob=0.3, bad_reply_sites=["A", "B"])
    draws = np.array([[faults.spoils(7, site, call) for call in range(1, 2001)] for site in sites])
    assert abs(draws[:2].mean() - 0.3) < 0.03 and not draws[2].any()
    assert (draws[0] != draws[1]).any()
    assert (draws[0] != [faults.crashes(7, 0, call) for call in range(1, 2001)]).any()
    assert not any(FaultConfig().spoils(7, sites[0], call) for call in range(1, 200))


def test_withdrawals_refuse_simulated_failures_but_not_valid_poisoned_replies():
    withdrawal = build_scenario(load_config("scenario", "site_withdrawal"))
    for faults, key in [(FaultConfig(crash_prob=0.1), "faults.crash_prob"),
                        (FaultConfig(bad_reply_prob=0.1, bad_reply="shape"), "faults.bad_reply_prob")]:
        with pytest.raises(ConfigError, match="site withdrawals cannot run with simulated failures") as raised:
            check_faults(faults, withdrawal)
        assert raised.value.key == key
    check_faults(FaultConfig(bad_reply_prob=1.0, bad_reply="scale", bad_reply_sites=["B"]), withdrawal)
    with pytest.raises(ConfigError, match="unknown site 'X'") as raised:
        check_faults(FaultConfig(bad_reply_sites=["B", "X"]), withdrawal)
    assert raised.value.key == "faults.bad_reply_sites"


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
@pytest.mark.slow  # the default run covers crashed sites (previous test)
def test_a_stage_no_site_can_train_is_retried_then_the_run_stops_with_a_clear_message(ray_head, tmp_path):
    run_dir = tmp_path / "run"
    done = run_cli("size=smoke", "faults.crash_prob=1", "faults.stage_retries=1", f"hydra.run.dir={run_dir}",
                   ray_head=ray_head)
    assert done.returncode == 2
    assert "stage 1: no site (A) completed a training round in 2 attempts" in done.stderr
    assert len(_events(run_dir, "retry")) == 1 and len(_events(run_dir, "failure")) == 2
    assert not (run_dir / "matrix.json").exists()


# Seed 4 at bad_reply_prob=0.5 spoils the first training calls of A and B and the second of B
# only (checked below): the stage has no valid reply and is run again, then goes on with A's.
SPOILT = ("size=smoke", "seed=4", "scenario=two_sites", "scenario.stages=[[A,B]]", "task.image_size=32",
          "task.channels=[8,16]", "task.strides=[2]", "backend.client_cpus=1", "faults.bad_reply_prob=0.5")


def test_the_seed_of_the_spoilt_runs_spoils_the_calls_they_expect():
    faults = FaultConfig(bad_reply_prob=0.5)
    site_a, site_b = SiteSpec(id="A", name="a", index=0), SiteSpec(id="B", name="b", index=1)
    assert [faults.spoils(4, site, call) for call in (1, 2) for site in (site_a, site_b)] == [True, True, False, True]


@pytest.fixture(scope="module")
def spoilt_runs(ray_head, tmp_path_factory) -> dict:
    """Kind -> the run directory of :data:`SPOILT` with that kind of invalid reply."""
    runs = {}
    for kind in ("nan", "shape"):
        runs[kind] = tmp_path_factory.mktemp("spoilt") / kind
        done = run_cli(*SPOILT, f"faults.bad_reply={kind}", f"hydra.run.dir={runs[kind]}", ray_head=ray_head)
        assert done.returncode == 0, done.stderr[-2000:]
    return runs


@pytest.mark.e2e
@pytest.mark.parametrize("kind, problem", [("nan", "non-finite values in '"),
                                           ("shape", "' has shape (9, 1, 3, 3) instead of (8, 1, 3, 3)")])
def test_an_invalid_reply_is_left_out_and_recorded_like_a_crash(spoilt_runs, kind, problem):
    run_dir = spoilt_runs[kind]
    failures = _events(run_dir, "failure")
    assert [(f["stage"], f["site"]) for f in failures] == [(1, "A"), (1, "B"), (1, "B")]
    assert all(f["reason"].startswith("invalid reply: ") and problem in f["reason"] for f in failures)
    summary, report = read_json(run_dir / "summary.json"), (run_dir / "report.md").read_text()
    assert [f["reason"] for f in summary["failures"]] == [f["reason"] for f in failures]
    assert "3 training call(s) failed" in report and failures[0]["reason"] in report
    assert [e["site"] for e in _events(run_dir, "train")] == ["A"]
    assert len(_events(run_dir, "retry")) == 1
    final = torch.load(run_dir / "checkpoints" / "stage_1.pt")
    assert all(value.isfinite().all() for value in final.values() if value.is_floating_point())
    assert np.isfinite(read_json(run_dir / "matrix.json")["R"]).all()


@pytest.mark.e2e
def test_the_strategy_aggregates_only_the_valid_replies(spoilt_runs):
    # NaN and mis-shaped replies, spoilt differently but left out alike, leave the same model.
    nan, shape = (torch.load(spoilt_runs[kind] / "checkpoints" / "stage_1.pt") for kind in ("nan", "shape"))
    assert all(torch.equal(nan[key], shape[key]) for key in nan)
    assert read_json(spoilt_runs["nan"] / "matrix.json")["R"] == read_json(spoilt_runs["shape"] / "matrix.json")["R"]
