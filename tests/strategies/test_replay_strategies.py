"""The replay strategies' messages (strategies/experience_replay.py, strategies/pga.py): what
each ablation switch sends to the sites, and PGA's server-side meta-step."""

from dataclasses import replace

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from torch.utils.data import TensorDataset

from sites.errors import ConfigError
from sites.protocol import ReplayOptions, TrainConfig
from sites.replay import pack_domains
from sites.tasks import build_task
from strategies import build_strategy
from strategies.experience_replay import ExperienceReplay
from strategies.pga import PGA, SERVER_SHARE, relative_move

NODE_MINIMA = {"min_train_nodes": 1, "min_available_nodes": 1, "min_evaluate_nodes": 1}


def _pga(**arguments) -> PGA:
    """PGA as ``strategy`` config with ``arguments`` builds it (the other arguments their defaults)."""
    return build_strategy({"_target_": "strategies.pga.PGA", **arguments, **NODE_MINIMA})


class OneNodeGrid:
    def get_node_ids(self):
        return [7]


def _messages(strategy, replay=None):
    strategy.set_replay(replay)
    return list(strategy.configure_train(1, ArrayRecord({"w": torch.zeros(2)}), ConfigRecord({"stage": 2}),
                                         OneNodeGrid()))


REPLAY = pack_domains({"A": TensorDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long))})


def test_messages_carry_replay_only_when_there_is_some():
    (without,) = _messages(ExperienceReplay(**NODE_MINIMA))
    assert set(without.content.array_records) == {"arrays"}
    (message,) = _messages(ExperienceReplay(**NODE_MINIMA), REPLAY)
    assert set(message.content.array_records) == {"arrays", "replay"}
    assert message.content["config"]["replay-objective"] == "mix"


def test_each_pga_switch_reaches_the_sites():
    # PGA's defaults, as configs/strategy/pga.yaml also sets them
    full = ReplayOptions("pga", alpha=1e-4, weight=1.0, orientational=True, arbitrary=True, second_order=False,
                         inner_step="normalized", pseudo_domains=2)
    cases = {
        "full": ({}, full),
        "orientational only": ({"arbitrary": False}, replace(full, arbitrary=False)),
        "arbitrary only": ({"orientational": False}, replace(full, orientational=False)),
        "second order": ({"second_order": True, "alpha": 0.01, "weight": 0.5},
                         replace(full, alpha=0.01, weight=0.5, second_order=True)),
        "sgd inner step": ({"inner_step": "sgd"}, replace(full, inner_step="sgd")),
        "no pseudo-domains": ({"pseudo_domains": 0}, replace(full, pseudo_domains=0)),
    }
    for name, (arguments, expected) in cases.items():
        (message,) = _messages(_pga(**arguments), REPLAY)
        assert TrainConfig.from_record(message.content["config"]).replay == expected, name
        assert message.content["config"]["stage"] == 2


def test_an_unknown_inner_step_is_refused_by_its_config_key():
    with pytest.raises(ConfigError, match=r"^strategy\.inner_step: must be 'sgd' or 'normalized' \(got 'adam'\)$"):
        _pga(inner_step="adam")


@pytest.mark.parametrize("count, reason", [(-1, "greater than or equal to 0"), (1.5, "a valid integer"),
                                           (True, "a valid integer")])
def test_a_bad_pseudo_domain_count_is_refused_by_its_config_key(count, reason):
    with pytest.raises(ConfigError, match=rf"^strategy\.pseudo_domains: must be {reason} \(got {count}\)$"):
        _pga(pseudo_domains=count)


def _segmentation():
    return build_task({"_target_": "sites.tasks.segmentation.SegmentationTask", "n_train": 4, "n_test": 2,
                       "batch_size": 2, "local_steps": 1, "lr": 0.01, "image_size": 16, "channels": [4, 8],
                       "strides": [2], "num_res_units": 0})


def _reply(arrays: ArrayRecord) -> Message:
    content = RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 4})})
    return Message(content, dst_node_id=0, message_type="train")


class ServerStep:
    """A PGA strategy's aggregation of one reply (``arrays``) with ``replay`` (site -> data)."""

    def __init__(self, monkeypatch):
        self.task = _segmentation()
        torch.manual_seed(0)
        self.arrays = ArrayRecord(self.task.build_model().state_dict())
        # The round starts from the aggregate moved back a little, so the round's move is known.
        self.start = ArrayRecord({k: v - 0.01 for k, v in self.arrays.to_torch_state_dict().items()})
        monkeypatch.setattr("flwr.serverapp.strategy.FedAvg.aggregate_train",
                            lambda strategy, server_round, replies: (self.arrays, MetricRecord({"train_loss": 1.0})))

    @staticmethod
    def domain(seed: int) -> TensorDataset:
        generator = torch.Generator().manual_seed(seed)
        return TensorDataset(torch.randn(4, 1, 16, 16, generator=generator),
                             torch.randint(0, 2, (4, 1, 16, 16), generator=generator))

    def __call__(self, replay: dict, **options) -> tuple[dict, MetricRecord]:
        strategy = _pga(**options)
        strategy.bind_task(self.task)
        strategy.set_replay(pack_domains(replay))
        list(strategy.configure_train(1, self.start, ConfigRecord({"stage": 2}), OneNodeGrid()))
        result, metrics = strategy.aggregate_train(1, [_reply(self.arrays)])
        return result.to_torch_state_dict(), metrics

    def moved(self, state: dict) -> bool:
        return any(not torch.equal(value, state[k]) for k, value in self.arrays.to_torch_state_dict().items())


def test_server_meta_steps_are_on_by_default_and_move_the_aggregate_by_the_logged_share(monkeypatch):
    step = ServerStep(monkeypatch)
    state, metrics = step({"A": step.domain(0), "B": step.domain(1)})
    assert _pga().server_steps > 0 and step.moved(state)
    assert metrics["train_loss"] == 1.0
    assert metrics[SERVER_SHARE] == pytest.approx(relative_move(step.start, step.arrays, ArrayRecord(state)))
    assert metrics[SERVER_SHARE] > 0


@pytest.mark.parametrize("replay, options, acts", [
    ({"A": 0, "B": 1}, {"server_steps": 0}, False),                        # the ablation
    ({"A": 0}, {"pseudo_domains": 0}, False),                              # one domain: nothing to align
    ({"A": 0}, {}, True),                                                  # arbitrary, with pseudo-domains
    ({"A": 0}, {"arbitrary": False}, False),                               # orientational needs two sites
    ({"A": 0, "B": 1}, {"arbitrary": False, "pseudo_domains": 0}, True),   # orientational, B against A
])
def test_server_meta_steps_act_exactly_when_a_meta_objective_exists(monkeypatch, replay, options, acts):
    step = ServerStep(monkeypatch)
    state, metrics = step({site: step.domain(seed) for site, seed in replay.items()}, **options)
    assert step.moved(state) == acts
    assert (SERVER_SHARE in metrics) == acts


def test_the_newest_replayed_site_takes_the_current_sites_role(monkeypatch):
    step = ServerStep(monkeypatch)
    seen = {}

    def spy(loss, replay, options, seed, meter=None, pseudo=None):
        seen.update(earlier=list(replay), pseudo=len(pseudo))

        def objective(model, batch):
            seen.setdefault("batch", batch[0])
            return loss(model, batch)

        return objective

    monkeypatch.setattr("sites.replay_objectives.replay_objective", spy)
    replay = {"A": step.domain(0), "B": step.domain(1), "C": step.domain(2)}
    step(replay, server_steps=1, pseudo_domains=2)
    assert seen["earlier"] == ["A", "B"] and seen["pseudo"] == 2
    # The step's own batches are C's images, as the task trains on them.
    newest = step.task.training_data(step.task.build_model(), replay["C"], TrainConfig(2)).tensors[0]
    assert all(any(torch.equal(image, candidate) for candidate in newest) for image in seen["batch"])


def test_relative_move_by_hand():
    start, aggregated, stepped = (ArrayRecord({"w": torch.tensor(v)}) for v in ([0.0, 0.0], [3.0, 4.0], [3.0, 5.0]))
    assert relative_move(start, aggregated, stepped) == pytest.approx(1 / 5)
