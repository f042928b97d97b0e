"""Replay and continual-strategy configurations refused before anything runs, each naming its key."""

import pytest
from hydra import compose, initialize_config_dir

from conftest import ROOT
from simulations.run import prepare
from sites.errors import ConfigError


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
    (("strategy=pga", "replay.generator.channels=[16]"), "replay.generator.channels", "must hold at least 2 item(s) (got [16])"),
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
