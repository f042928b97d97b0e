"""One stage's training (server/stage_runner.py) on fake sites: the task's phases as the
strategy's rounds, the sites' counts summed before the phase that needs them, progress reported
where a checkpoint goes, and a resumed stage started where it stopped."""

import json

import torch
from flwr.app import ArrayRecord, Error
from flwr.serverapp.strategy import FedAvg
from helpers.fake_grid import FakeSites, TwoPhaseTask

from server.checkpoint import Position, RunState, SiteState
from server.results import RunResult
from server.run_log import RunLog
from server.scenario import Stage
from server.site_grid import SiteGrid
from server.stage_runner import StageRunner, Views
from sites.faults import CRASH_CODE
from sites.protocol import STATISTICS, TRAIN, StatisticsQuery, TrainConfig

SITE_OF_NODE = {11: "A", 12: "B"}
STAGE = Stage(index=2, sites=("A", "B"), rounds=2)


def _strategy() -> FedAvg:
    # the strategy's own evaluation rounds left out: the timeline evaluates after the stage
    return FedAvg(fraction_evaluate=0.0, min_available_nodes=1, min_train_nodes=1, min_evaluate_nodes=0)


def _weight(arrays: ArrayRecord) -> torch.Tensor:
    return arrays.to_torch_state_dict()["w"]


def _sent_configs(grid, kind) -> list[TrainConfig]:
    return [TrainConfig.from_record(m.content["config"]) for m in grid.sent_of(kind.type)]


def test_each_phase_runs_the_stages_rounds_the_second_configured_by_the_summed_counts(tmp_path):
    sites = FakeSites(SITE_OF_NODE, counts={"A": {"n": 3.0}, "B": {"n": 4.0}}, examples={"A": 1, "B": 3})
    grid = sites.grid()
    log = RunLog(tmp_path / "metrics.jsonl")
    progress = []
    arrays, statistics = StageRunner(TwoPhaseTask(), timeout=5, log=log).train(
        _strategy(), SiteGrid(grid, SITE_OF_NODE, ["A", "B"]), STAGE, ArrayRecord({"w": torch.zeros(2)}),
        on_progress=lambda position, current, summed: progress.append((position, _weight(current)[0].item())))
    log.close()
    assert statistics == {"weigh": {"n": 7.0}}
    # two phases of two rounds; in round k both sites add k (their k-th call), FedAvg keeps that
    assert torch.equal(_weight(arrays), torch.full((2,), 1.0 + 2 + 3 + 4))
    configs = _sent_configs(grid, TRAIN)
    assert [(c.stage, c.phase, c.entries.get("total")) for c in configs] == \
        [(2, "count", None)] * 4 + [(2, "weigh", 7.0)] * 4
    # the counts are asked once, of the model the first phase ended with
    (query, _) = grid.sent_of(STATISTICS.type)
    assert StatisticsQuery.from_record(query.content["config"]) == StatisticsQuery(2, "weigh")
    assert torch.equal(_weight(query.content["arrays"]), torch.full((2,), 3.0))
    # progress after each round but a phase's last, and after each phase
    assert progress == [(Position(2, 0, 1), 1.0), (Position(2, 1), 3.0), (Position(2, 1, 1), 6.0),
                        (Position(2, 2), 10.0)]
    aggregates = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(a["round"], a["phase"], a["metrics"]["train_loss"]) for a in aggregates] == \
        [(1, "count", 0.0), (2, "count", 1.0), (1, "weigh", 2.0), (2, "weigh", 3.0)]


def test_a_resumed_stage_starts_at_its_position_with_the_counts_it_had(tmp_path):
    grid = FakeSites(SITE_OF_NODE).grid()
    start = ArrayRecord({"w": torch.full((2,), 5.0)})
    arrays, statistics = StageRunner(TwoPhaseTask(), timeout=5).train(
        _strategy(), SiteGrid(grid, SITE_OF_NODE, ["A", "B"]), STAGE, start,
        start=Position(2, 1, 1), statistics={"weigh": {"n": 9.0}})
    assert statistics == {"weigh": {"n": 9.0}} and not grid.sent_of(STATISTICS.type)
    # one round of the second phase left, the sites' first call
    assert [(c.phase, c.entries["total"]) for c in _sent_configs(grid, TRAIN)] == [("weigh", 9.0)] * 2
    assert torch.equal(_weight(arrays), torch.full((2,), 6.0))


def test_the_training_view_counts_replies_and_records_a_site_that_went_down(tmp_path, scenario):
    sites = FakeSites(SITE_OF_NODE)
    grid = sites.grid()
    answer = grid.answer
    grid.answer = lambda m: Error(code=CRASH_CODE, reason="SiteCrash: simulated") \
        if m.metadata.dst_node_id == 12 else answer(m)
    log = RunLog(tmp_path / "metrics.jsonl")
    log.stage = 2
    site_state = SiteState()
    site_state.attach(SITE_OF_NODE)
    arrays = ArrayRecord({"w": torch.zeros(2)})
    state = RunState(Position(2), arrays, arrays, _strategy(), None, None, RunResult(scenario, "score"))
    view = Views(grid, SITE_OF_NODE, log, site_state).training(["A", "B"], state)
    arrays, statistics = StageRunner(TwoPhaseTask(), timeout=5, log=log).train(_strategy(), view, STAGE, arrays)
    log.close()
    assert state.trained == 4  # A's replies only: two phases of two rounds
    assert statistics == {"weigh": {"n": 1.0}}  # A's counts only
    assert [(f.stage, f.round, f.site, f.message, f.reason) for f in state.failures] == \
        [(2, 1, "B", "train", "SiteCrash: simulated"), (2, 2, "B", "train", "SiteCrash: simulated"),
         (2, 3, "B", "query.statistics", "SiteCrash: simulated"), (2, 3, "B", "train", "SiteCrash: simulated"),
         (2, 4, "B", "train", "SiteCrash: simulated")]
    # every seeded call sent is counted, the crashed ones too: the site may have trained before it went down
    assert dict(site_state.calls) == {"A": 4, "B": 4}
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [{k: e[k] for k in state.failures[0].to_dict()} for e in logged if "reason" in e] == \
        [f.to_dict() for f in state.failures]
