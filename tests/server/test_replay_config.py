"""Replay and continual-strategy configurations refused before anything runs, each naming its key."""

import pytest
import torch
from conftest import ROOT
from flwr.app import ArrayRecord, ConfigRecord
from hydra import compose, initialize_config_dir

from server.replay import REPLAY_SOURCES, NoReplay, build_replay_source
from server.replay_config import ReplayConfig
from simulations.run import prepare
from sites.errors import ConfigError
from sites.protocol import RecordName
from sites.replay import pack_domains, unpack_domains


def _prepare(tmp_path, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = compose(config_name="config", overrides=["size=smoke", *overrides])
    return prepare(cfg, tmp_path)


@pytest.mark.parametrize("overrides, source", [
    (("strategy=pga",), "smd"), (("strategy=pga", "replay=none"), "none"), (("strategy=pga", "replay=real"), "real"),
    (("strategy=smd_replay",), "smd"), (("strategy=replay_buffer",), "real"), (("strategy=ewc",), "none"),
    (("strategy=pga", "task=grading"), "smd"),
])
def test_the_shipped_combinations_are_accepted(tmp_path, overrides, source):
    assert _prepare(tmp_path, *overrides).plan.replay.source == source


@pytest.mark.parametrize("overrides, key, message", [
    (("replay=smd",), "replay", "FedAvg does not train on replay"),
    (("strategy=pga", "privacy=dp"), "privacy", "PGA cannot run with privacy=dp"),
    (("strategy=ewc", "privacy=dp"), "privacy", "EWC cannot run with privacy=dp"),
    (("strategy=pga", "scenario=site_withdrawal"), "strategy", "site withdrawals cannot run with PGA"),
    (("strategy=replay_buffer", "scenario=site_withdrawal"), "strategy", "replay=real"),
    (("strategy=pga", "replay.generator.steps=0"), "replay.generator.steps", "must be greater than 0 (got 0)"),
    (("strategy=pga", "+replay.generator.depth=3"), "replay.generator", "unknown keys ['depth']"),
    (("strategy=pga", "replay.source=gan"), "replay.source",
     "must be one of 'none', 'smd', 'real' or the import path of a replay source class (server.replay.ReplaySource) "
     "(got 'gan')"),
    (("strategy=pga", "replay.per_site=-1"), "replay.per_site", "must be greater than 0 (got -1)"),
    (("strategy=pga", "replay.generator.channels=[16]"), "replay.generator.channels",
     "must hold at least 2 item(s) (got [16])"),
    (("strategy=pga", "replay.generator.lr=0"), "replay.generator.lr", "must be greater than 0 (got 0)"),
    (("strategy=pga", "+replay.colour=red"), "replay", "unknown keys ['colour']"),
    (("strategy=pga", "replay.generator.prompt_dropout=0", "replay.generator.guidance=2"), "replay.generator.guidance",
     "set prompt_dropout > 0 or guidance 1"),
    (("strategy=pga", "replay.generator.prompt_dropout=1"), "replay.generator.prompt_dropout", "less than 1"),
])
def test_bad_replay_configs_name_their_key(tmp_path, overrides, key, message):
    with pytest.raises(ConfigError) as raised:
        _prepare(tmp_path, *overrides)
    assert str(raised.value).startswith(f"{key}: ")
    assert message in str(raised.value)


def test_a_users_replay_source_joins_by_its_import_path_and_feeds_the_strategy(tmp_path, plugins):
    from my_replay_source import NoiseReplay

    plan = _prepare(tmp_path, "strategy=replay_buffer", "replay.source=my_replay_source.NoiseReplay",
                    "replay.per_site=3").plan
    source = build_replay_source(plan.replay, plan.task, plan.seed)
    assert isinstance(source, NoiseReplay)
    replay = source.replay(["A"])
    assert len(replay["A"]) == 3
    strategy = plan.strategy
    strategy.set_replay(pack_domains(replay))
    (message,) = strategy.configure_train(1, ArrayRecord(), ConfigRecord({"stage": 2}), _OneNode())
    assert torch.equal(unpack_domains(message.content[RecordName.REPLAY])["A"].tensors[0], replay["A"].tensors[0])
    assert source.summary().to_dict() == {"source": "noise", "private": True, "learned": []}


def test_a_registered_source_is_named_by_its_name(tmp_path, plugins):
    from my_replay_source import NoiseReplay

    REPLAY_SOURCES.register("noise_for_test", NoiseReplay)
    plan = _prepare(tmp_path, "strategy=replay_buffer", "replay.source=noise_for_test").plan
    assert isinstance(build_replay_source(plan.replay, plan.task, plan.seed), NoiseReplay)
    assert isinstance(build_replay_source(ReplayConfig(), plan.task, plan.seed), NoReplay)


class _OneNode:
    def get_node_ids(self):
        return [7]
