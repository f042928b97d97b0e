"""A withdrawal end to end (server/withdrawal.py) on fake sites, without Ray: the oracle retrained
without the site, the subsets each model is measured on, the scores and the saved models."""

import pytest
import torch
from conftest import build_scenario
from flwr.app import ArrayRecord
from flwr.serverapp.strategy import FedAvg
from helpers.fake_grid import FakeSites, TwoPhaseTask

from server.checkpoint import SiteState
from server.run_log import RunLog
from server.stage_runner import StageRunner, Views
from server.unlearning import NoUnlearning, Retrain, UnlearningContext
from server.withdrawal import WithdrawalEvent
from sites.protocol import AUDIT, EVALUATE, TRAIN

SITE_OF_NODE = {51: "A", 52: "B", 53: "C", 54: "D", 55: "E"}


def _weight(arrays: ArrayRecord) -> float:
    return arrays.to_torch_state_dict()["w"][0].item()


@pytest.mark.parametrize("method", [NoUnlearning(), Retrain()], ids=lambda method: method.name)
def test_a_withdrawal_retrains_the_oracle_without_the_site_and_scores_the_method(scenario_config, tmp_path, method):
    # A, B, C, D arrive one per stage, E is held out; B withdraws after stage 3.
    scenario = build_scenario({**scenario_config, "rounds_per_stage": 1, "reason": "privacy",
                               "withdrawals": [{"site": "B", "stage": 3}]})
    grid = FakeSites(SITE_OF_NODE).grid()
    sites = SiteState()
    sites.attach(SITE_OF_NODE)
    log = RunLog(tmp_path / "metrics.jsonl")
    task, strategy = TwoPhaseTask(), FedAvg(fraction_evaluate=0.0, min_available_nodes=1, min_train_nodes=1)
    views = Views(grid, SITE_OF_NODE, log, sites)
    context = UnlearningContext(scenario, task, strategy, StageRunner(task, timeout=5), views,
                                initial=ArrayRecord({"w": torch.full((2,), -6.0)}), checkpoints=tmp_path, updates=None,
                                timeout=5)
    before = ArrayRecord({"w": torch.full((2,), 0.25)})
    after, record = WithdrawalEvent(method, context, "score").run(scenario.withdrawals[0], before)
    log.close()

    # the oracle: stages 1 and 3 again from the initial model, without B: A, then C, each adding 1 and 2
    assert [m.metadata.dst_node_id for m in grid.sent_of(TRAIN.type)] == [51, 51, 53, 53]
    oracle = torch.load(tmp_path / "stage_3_oracle_without_B.pt")["w"]
    assert torch.equal(oracle, torch.zeros(2))
    assert _weight(after) == (0.25 if method.name == "none" else 0.0)
    assert torch.equal(torch.load(tmp_path / "stage_3_without_B.pt")["w"], after.to_torch_state_dict()["w"])

    assert record.subsets == {"forget": ["B"], "retain": ["A", "C"], "test": ["A", "C", "D", "E"]}
    # forget and retain on the sites' training splits (+0.5), test on the test splits; site k adds k / 100
    expected = {"before": 0.25, "after": _weight(after), "oracle": 0.0}
    for name, model in expected.items():
        assert record.performance[name] == pytest.approx(
            {"forget": model + 0.51, "retain": model + 0.51, "test": model + 0.0225}), name
        assert record.per_site[name]["test"] == pytest.approx(
            {"A": model, "C": model + 0.02, "D": model + 0.03, "E": model + 0.04}), name
        assert record.mia_forget_auc[name] == pytest.approx(model / 100), name
    # keeping the model forgets nothing; the oracle is the yardstick itself
    scores = record.scores
    assert (scores["s_F"], scores["UES"]) == ((0.0, 0.0) if method.name == "none" else (1.0, 1.0))
    assert record.method == method.name and record.site == "B" and record.stage == 3
    # each distinct model is measured once: before (also `none`'s after) and the oracle (also retrain's)
    assert len(grid.sent_of(AUDIT.type)) == 2 and len(grid.sent_of(EVALUATE.type)) == 2 * (3 + 4)
    if method.is_oracle:
        assert record.seconds == record.retrain_seconds and record.cost_ratio == 1.0
