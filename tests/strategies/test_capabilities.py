"""Strategy capabilities (strategies/capabilities.py): the built-in strategies have the ones they
implement, a wrapper strategy has its wrapped strategy's, a user's strategy has one by its
members alone, and the run's checks (server/capability_checks.py) read them."""

import pytest
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg, QFedAvg

from server.capability_checks import check_strategy_objective, check_train_metrics
from server.replay_config import ReplayConfig
from sites.config import parse
from sites.errors import ConfigError
from sites.privacy import Privacy
from strategies import build_strategy
from strategies.capabilities import (
    ReplayConsumer,
    SiteObjectiveChanger,
    TaskAware,
    TaskCapabilityUser,
    TrainLossReader,
    bind_task,
    capable,
    unwrapped,
)
from strategies.experience_replay import ExperienceReplay

CAPABILITIES = (ReplayConsumer, SiteObjectiveChanger, TaskCapabilityUser, TaskAware, TrainLossReader)


def _pga():
    return build_strategy({"_target_": "strategies.pga.PGA"})


def _ewc():
    return build_strategy({"_target_": "strategies.ewc.EWC"})


def _wrapped(strategy):
    """``strategy`` inside Flower's server-side DP wrapper."""
    return DifferentialPrivacyServerSideFixedClipping(strategy, noise_multiplier=1.0, clipping_norm=1.0,
                                                      num_sampled_clients=1)


@pytest.mark.parametrize("strategy, has", [
    (FedAvg(), set()),
    (QFedAvg(client_learning_rate=0.1), {TrainLossReader}),
    (ExperienceReplay(), {ReplayConsumer, SiteObjectiveChanger}),
    (_pga(), {ReplayConsumer, SiteObjectiveChanger, TaskAware}),
    (_ewc(), {SiteObjectiveChanger, TaskCapabilityUser}),
])
def test_the_built_in_strategies_have_their_capabilities(strategy, has):
    assert {capability for capability in CAPABILITIES if isinstance(strategy, capability)} == has


def test_a_wrapper_has_the_capabilities_of_the_strategy_it_wraps(small_task):
    inner = _pga()
    wrapper = _wrapped(inner)
    assert list(unwrapped(wrapper)) == [wrapper, inner]
    assert capable(wrapper, ReplayConsumer) is inner and capable(wrapper, TrainLossReader) is None
    bind_task(wrapper, small_task)
    assert inner.task is small_task


class ReplayOnlyTask:
    """The replay space a task needs for ``replay=real`` (:class:`~sites.tasks.ReplayCodec`), nothing else."""

    replay_classes = 0
    replay_shape = (1, 4, 4)

    def encode_replay(self, data):
        raise NotImplementedError

    def decode_replay(self, x, classes):
        raise NotImplementedError


class _Remembering(FedAvg):
    """A user's strategy that takes replay without naming any protocol."""

    def set_replay(self, replay) -> None:
        self.replay = replay


def test_a_capability_is_recognised_by_its_members():
    assert isinstance(_Remembering(), ReplayConsumer) and not isinstance(_Remembering(), SiteObjectiveChanger)
    check_strategy_objective(_Remembering(), ReplayConfig(source="real"), ReplayOnlyTask(), dp=True,
                             withdrawals=False)


def test_the_checks_see_through_a_wrapper(small_task):
    # replay: the wrapped strategy consumes it
    check_strategy_objective(_wrapped(ExperienceReplay()), ReplayConfig(source="real"), small_task, dp=False,
                             withdrawals=False)
    with pytest.raises(ConfigError, match="^replay: .*does not train on replay"):
        check_strategy_objective(_wrapped(FedAvg()), ReplayConfig(source="real"), small_task, dp=False,
                                 withdrawals=False)
    with pytest.raises(ConfigError, match="^privacy: EWC cannot run with privacy=dp: its penalty terms"):
        check_strategy_objective(_wrapped(_ewc()), ReplayConfig(), small_task, dp=True, withdrawals=False)
    with pytest.raises(ConfigError, match="^strategy: site withdrawals cannot run with"):
        check_strategy_objective(_wrapped(_ewc()), ReplayConfig(), small_task, dp=False, withdrawals=True)
    withhold = parse(Privacy, {"method": "dp", "noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": 1e-5,
                               "train_metrics": "withhold"}, "privacy")
    with pytest.raises(ConfigError, match="withhold: QFedAvg reads each site's 'train_loss'"):
        check_train_metrics(_wrapped(QFedAvg(client_learning_rate=0.1)), small_task, withhold)


def test_a_strategy_needs_its_task_capabilities(small_task):
    with pytest.raises(ConfigError, match="^strategy: ReplayOnlyTask does not implement "
                                          "sites.tasks.ClassLogits .*needed by EWC"):
        check_strategy_objective(_ewc(), ReplayConfig(), ReplayOnlyTask(), dp=False, withdrawals=False)
    check_strategy_objective(_ewc(), ReplayConfig(), small_task, dp=False, withdrawals=False)
