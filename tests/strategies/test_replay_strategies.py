"""The replay strategies' messages (strategies/experience_replay.py, strategies/pga.py): what
each ablation switch sends to the sites, and PGA's optional server-side meta-step."""

from dataclasses import replace

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from torch.utils.data import TensorDataset

from sites.errors import ConfigError
from sites.replay import pack_domains
from sites.protocol import ReplayOptions, TrainConfig
from sites.tasks import build_task
from strategies.experience_replay import ExperienceReplay
from strategies.pga import PGA

NODE_MINIMA = {"min_train_nodes": 1, "min_available_nodes": 1, "min_evaluate_nodes": 1}


class OneNodeGrid:
    def get_node_ids(self):
        return [7]


def _messages(strategy, replay=None):
    strategy.set_replay(replay, task=None)
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
    full = ReplayOptions(pseudo_domains=2)
    cases = {
        "full": ({}, full),
        "orientational only": ({"arbitrary": False}, replace(full, arbitrary=False)),
        "arbitrary only": ({"orientational": False}, replace(full, orientational=False)),
        "second order": ({"second_order": True, "alpha": 0.01, "weight": 0.5},
                         replace(full, alpha=0.01, weight=0.5, second_order=True)),
        "normalized inner step": ({"inner_step": "normalized"}, replace(full, inner_step="normalized")),
        "no pseudo-domains": ({"pseudo_domains": 0}, replace(full, pseudo_domains=0)),
    }
    for name, (arguments, expected) in cases.items():
        (message,) = _messages(PGA(**arguments, **NODE_MINIMA), REPLAY)
        assert TrainConfig.from_record(message.content["config"]).replay == expected, name
        assert message.content["config"]["stage"] == 2


def test_an_unknown_inner_step_is_refused_by_its_config_key():
    with pytest.raises(ConfigError, match=r"strategy\.inner_step.*'adam'.*sgd or normalized"):
        PGA(inner_step="adam", **NODE_MINIMA)


@pytest.mark.parametrize("count", [-1, 1.5, True])
def test_a_bad_pseudo_domain_count_is_refused_by_its_config_key(count):
    with pytest.raises(ConfigError, match=r"strategy\.pseudo_domains.*integer >= 0"):
        PGA(pseudo_domains=count, **NODE_MINIMA)


def _segmentation():
    return build_task({"_target_": "sites.tasks.segmentation.SegmentationTask", "n_train": 4, "n_test": 2,
                       "batch_size": 2, "local_steps": 1, "lr": 0.01, "image_size": 16, "channels": [4, 8],
                       "strides": [2], "num_res_units": 0})


def _reply(arrays: ArrayRecord) -> Message:
    content = RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 4})})
    return Message(content, dst_node_id=0, message_type="train")


def test_server_meta_step_moves_the_aggregate_only_with_two_replayed_sites(monkeypatch):
    task = _segmentation()
    torch.manual_seed(0)
    arrays = ArrayRecord(task.build_model().state_dict())
    domain = TensorDataset(torch.randn(4, 1, 16, 16), torch.randint(0, 2, (4, 1, 16, 16)))
    monkeypatch.setattr("flwr.serverapp.strategy.FedAvg.aggregate_train",
                        lambda self, server_round, replies: (arrays, MetricRecord()))

    def aggregate(server_steps: int, domains: dict) -> dict:
        strategy = PGA(server_steps=server_steps, **NODE_MINIMA)
        strategy.set_replay(pack_domains(domains), task)
        result, _ = strategy.aggregate_train(1, [_reply(arrays)])
        return result.to_torch_state_dict()

    before = arrays.to_torch_state_dict()
    unchanged = [aggregate(0, {"A": domain, "B": domain}), aggregate(3, {"A": domain})]
    for state in unchanged:
        assert all(torch.equal(state[k], before[k]) for k in before)
    moved = aggregate(3, {"A": domain, "B": domain})
    assert any(not torch.equal(moved[k], before[k]) for k in before)
