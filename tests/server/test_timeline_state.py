"""The timeline's state (server/server_app.py, server/checkpoint.py) on fake sites, without Ray:
what its checkpoint holds mid-stage, a run killed mid-way resumed to the uninterrupted result,
and a stage no site could train run again, then refused."""

import json

import pytest
import torch
from conftest import build_scenario, load_config, read_json
from flwr.app import Error
from flwr.serverapp.strategy import FedAvg
from helpers.fake_grid import FakeSites, TwoPhaseTask

from server.checkpoint import Position, RunState
from server.server_app import RunPlan, Timeline, initial_arrays
from sites.errors import MedsitesError
from sites.faults import CRASH_CODE, FaultConfig
from sites.protocol import RESUME, TRAIN, NodeState, TrainConfig

SITE_OF_NODE = {21: "A", 22: "B"}


class Killed(Exception):
    """The server process dies while it sends a message."""


def _plan(run_dir, **changes) -> RunPlan:
    """Two stages (A, then B) of two rounds per phase, FedAvg without its own evaluation rounds."""
    config = {**load_config("scenario", "two_sites"), "rounds_per_stage": 2}
    strategy = FedAvg(fraction_evaluate=0.0, min_available_nodes=1, min_train_nodes=1, min_evaluate_nodes=0)
    return RunPlan(**{"scenario": build_scenario(config), "task": TwoPhaseTask(), "strategy": strategy, "seed": 4,
                      "run_dir": run_dir, "round_timeout": 5, **changes})


def _killed_at(run_dir, train_messages: int) -> FakeSites:
    """Run the plan until the server sends its ``train_messages``-th training message, and die."""
    sites = FakeSites(SITE_OF_NODE)
    grid = sites.grid()

    def answer(message):
        if message.metadata.message_type == TRAIN.type and len(grid.sent_of(TRAIN.type)) == train_messages:
            raise Killed
        return sites.answer(message)

    grid.answer = answer
    with pytest.raises(Killed):
        Timeline(_plan(run_dir)).run(grid)
    return sites


def _site_replies(run_dir) -> list[dict]:
    """What the sites computed (training and evaluation replies), in order."""
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [event for event in events if event["event"] in ("train", "matrix")]


def test_the_checkpoint_mid_stage_holds_the_position_model_counts_and_calls(tmp_path):
    # Stage 1 (A): phase count, 2 rounds; phase weigh, 2 rounds. Killed sending the 4th round.
    _killed_at(tmp_path, train_messages=4)
    state = RunState.load(tmp_path / "checkpoints")
    assert state.position == Position(1, 1, 1)
    start = initial_arrays(TwoPhaseTask(), seed=4).to_torch_state_dict()["weight"]
    # A's first three calls added 1, 2 and 3
    assert torch.equal(state.arrays.to_torch_state_dict()["weight"], start + 6)
    assert torch.equal(state.initial.to_torch_state_dict()["weight"], start)
    assert state.statistics == {"weigh": {"n": 1.0}}
    assert state.trained == 3 and state.calls == {"A": 3}
    # metrics.jsonl stood after the third round's replies
    lines = (tmp_path / "metrics.jsonl").read_bytes()[:state.log["offset"]].decode().splitlines()
    assert [json.loads(line)["metrics"]["train_loss"] for line in lines if json.loads(line)["event"] == "train"] == \
        [0.0, 1.0, 2.0]
    assert state.log["round"] == 3


def test_a_run_killed_mid_stage_resumes_to_the_uninterrupted_result(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    Timeline(_plan(whole)).run(FakeSites(SITE_OF_NODE).grid())
    # Stage 2 (B) is killed sending its second round: the checkpoint is after its first.
    _killed_at(killed, train_messages=6)
    state = RunState.load(killed / "checkpoints")
    assert state.position == Position(2, 0, 1) and not (killed / "matrix.json").exists()

    restarted = FakeSites(SITE_OF_NODE)  # fresh nodes: every seeded-call count back at 0
    grid = restarted.grid()
    Timeline(_plan(killed, strategy=FedAvg()), resume=state).run(grid)
    # the sites were told how many seeded calls they had taken, and trained on from there
    assert sorted((m.metadata.dst_node_id, NodeState.from_record(m.content["config"]).train_calls)
                  for m in grid.sent_of(RESUME.type)) == [(21, 4), (22, 1)]
    assert read_json(killed / "matrix.json") == read_json(whole / "matrix.json")
    assert _site_replies(killed) == _site_replies(whole)
    for stage in (1, 2):
        for name, value in torch.load(whole / "checkpoints" / f"stage_{stage}.pt").items():
            assert torch.equal(torch.load(killed / "checkpoints" / f"stage_{stage}.pt")[name], value)


def test_a_stage_no_site_could_train_runs_again_from_its_start_then_stops_the_run(tmp_path):
    sites = FakeSites(SITE_OF_NODE)
    grid = sites.grid()
    grid.answer = lambda m: Error(code=CRASH_CODE, reason="SiteCrash: simulated") \
        if m.metadata.message_type == TRAIN.type else sites.answer(m)
    with pytest.raises(MedsitesError, match=r"stage 1: no site \(A\) completed a training round in 3 attempts "
                                            r"\(faults.stage_retries=2; last failure: site A: SiteCrash"):
        Timeline(_plan(tmp_path, faults=FaultConfig(stage_retries=2))).run(grid)
    # each attempt ran the stage from its start
    assert [TrainConfig.from_record(m.content["config"]).phase for m in grid.sent_of(TRAIN.type)] == \
        ["count", "count", "weigh", "weigh"] * 3
