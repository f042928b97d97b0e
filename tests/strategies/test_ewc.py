"""EWC (sites/ewc.py, strategies/ewc.py): the Fisher and the penalty by hand, and how the
strategy consolidates stages."""

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from torch import nn
from torch.utils.data import TensorDataset

from sites.ewc import ewc_penalty, fisher_diagonal, with_ewc
from strategies import build_strategy
from strategies.ewc import EWC


def _ewc(**arguments) -> EWC:
    """EWC as ``strategy`` config with ``arguments`` builds it (the other arguments their defaults)."""
    return build_strategy({"_target_": "strategies.ewc.EWC", "min_train_nodes": 1, "min_available_nodes": 1,
                           "min_evaluate_nodes": 1, **arguments})


class LogisticTask:
    """Just what fisher_diagonal needs: the per-sample NLL of a logistic model."""

    def per_sample_loss(self, model, batch):
        x, y = batch
        return nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], y, reduction="none")


def test_fisher_is_the_mean_squared_per_sample_gradient():
    # One weight, no bias: d NLL / dw = (sigmoid(w x) - y) x. With w = 0: (0.5 - y) x.
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    data = TensorDataset(torch.tensor([[2.0], [-1.0], [4.0]]), torch.tensor([1.0, 1.0, 0.0]))
    fisher = fisher_diagonal(LogisticTask(), model, data, max_samples=10, seed=0)
    expected = ((-0.5 * 2) ** 2 + (-0.5 * -1) ** 2 + (0.5 * 4) ** 2) / 3  # (1 + 0.25 + 4) / 3
    assert fisher["weight"].item() == pytest.approx(expected)
    assert fisher_diagonal(LogisticTask(), model, data, max_samples=1, seed=0)["weight"].item() in (1.0, 0.25, 4.0)


def test_penalty_by_hand_and_its_weight():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 3.0]]))
    fisher, anchor = {"weight": torch.tensor([[2.0, 0.5]])}, {"weight": torch.tensor([[0.0, 1.0]])}
    assert ewc_penalty(model, fisher, anchor).item() == pytest.approx(0.5 * (2 * 1 + 0.5 * 4))
    objective = with_ewc(lambda m, b: torch.tensor(1.0), fisher, anchor, weight=10.0)
    assert objective(model, []).item() == pytest.approx(1 + 10 * 2.0)


class FakeGrid:
    """Answers Fisher queries with a fixed Fisher per node."""

    def __init__(self, fishers: dict[int, tuple[float, int]]) -> None:
        self.fishers = fishers

    def get_node_ids(self):
        return list(self.fishers)

    def send_and_receive(self, messages, timeout=None):
        replies = []
        for message in messages:
            value, n = self.fishers[message.metadata.dst_node_id]
            content = RecordDict({"fisher": ArrayRecord({"w": torch.tensor([value])}),
                                  "metrics": MetricRecord({"num-examples": n})})
            replies.append(content)
        return [type("Reply", (), {"content": c})() for c in replies]


def test_strategy_sums_stage_fishers_and_anchors_at_the_previous_stage(monkeypatch):
    strategy = _ewc(weight=5.0)
    stage_models = {1: 1.0, 2: 2.0, 3: 3.0}

    def fake_start(self, grid, initial_arrays, num_rounds=3, timeout=3600, train_config=None, **kwargs):
        value = stage_models[train_config["stage"]]
        return type("Result", (), {"arrays": ArrayRecord({"w": torch.tensor([value])})})()

    monkeypatch.setattr("flwr.serverapp.strategy.FedAvg.start", fake_start)
    start = ArrayRecord({"w": torch.tensor([0.0])})
    strategy.start(FakeGrid({1: (1.0, 10), 2: (4.0, 30)}), start, train_config=ConfigRecord({"stage": 1}))
    assert strategy.fisher is None  # nothing to consolidate during the first stage
    strategy.start(FakeGrid({3: (2.0, 5)}), start, train_config=ConfigRecord({"stage": 2}))
    # stage 1's Fisher: (1 * 10 + 4 * 30) / 40 = 3.25; anchor: the model after stage 1
    assert strategy.fisher["w"].item() == pytest.approx(3.25)
    assert strategy.anchor.to_torch_state_dict()["w"].item() == 1.0
    strategy.start(FakeGrid({3: (2.0, 5)}), start, train_config=ConfigRecord({"stage": 3}))
    assert strategy.fisher["w"].item() == pytest.approx(3.25 + 2.0)
    assert strategy.anchor.to_torch_state_dict()["w"].item() == 2.0


def test_training_messages_carry_fisher_anchor_and_weight_once_a_stage_is_consolidated():
    strategy = _ewc(weight=5.0)
    grid = FakeGrid({1: (1.0, 1)})
    arrays = ArrayRecord({"w": torch.tensor([0.0])})
    (first,) = strategy.configure_train(1, arrays, ConfigRecord({"stage": 1}), grid)
    assert set(first.content.array_records) == {"arrays"}
    strategy.fisher, strategy.anchor = {"w": torch.tensor([3.0])}, ArrayRecord({"w": torch.tensor([1.0])})
    (message,) = strategy.configure_train(1, arrays, ConfigRecord({"stage": 2}), grid)
    assert set(message.content.array_records) == {"arrays", "ewc-fisher", "ewc-anchor"}
    assert message.content["config"]["ewc-weight"] == 5.0
    assert isinstance(message, Message)
