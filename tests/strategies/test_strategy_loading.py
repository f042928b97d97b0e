"""Strategies from config: Flower's own, a user's, and the errors of the plug-in path."""

import sys
from pathlib import Path

import pytest
from flwr.clientapp.mod import adaptiveclipping_mod, fixedclipping_mod
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    FedProx,
)

from sites.config import argument_model
from sites.errors import ConfigError
from strategies import build_strategy, check_strategy_fits, train_mods
from strategies.pga import PGA, PGAArguments

sys.path.insert(0, str(Path(__file__).parents[1] / "plugins"))
from frozen_strategy import FrozenFedAvg  # a user's module, on the path above

NODE_MINIMA = {"min_train_nodes": 1, "min_available_nodes": 1, "min_evaluate_nodes": 1}


def test_flower_strategies_with_arguments():
    fedprox = build_strategy({"_target_": "flwr.serverapp.strategy.FedProx", "proximal_mu": 0.1,
                              "min_available_nodes": 1})
    assert isinstance(fedprox, FedProx) and fedprox.proximal_mu == 0.1


def test_a_users_strategy_from_outside_the_packages():
    strategy = build_strategy({"_target_": "frozen_strategy.FrozenFedAvg", "label": "mine", "min_train_nodes": 1})
    assert isinstance(strategy, FedAvg) and strategy.label == "mine"


def _clipped(inner: dict) -> dict:
    """Flower's server-side DP wrapper around the strategy ``inner`` configures."""
    return {"_target_": "flwr.serverapp.strategy.DifferentialPrivacyServerSideFixedClipping",
            "noise_multiplier": 0.5, "clipping_norm": 1.0, "num_sampled_clients": 2, "strategy": inner}


def test_a_strategy_that_wraps_another_is_built_from_a_nested_target():
    wrapper = build_strategy(_clipped({"_target_": "flwr.serverapp.strategy.FedAvg", "min_train_nodes": 2,
                                       "min_evaluate_nodes": 1, "min_available_nodes": 1}))
    assert isinstance(wrapper, DifferentialPrivacyServerSideFixedClipping)
    assert type(wrapper.strategy) is FedAvg and wrapper.strategy.min_train_nodes == 2
    check_strategy_fits(wrapper, 2)
    # the wrapped strategy samples the nodes: its minima are checked through the wrapper
    with pytest.raises(ConfigError, match=r"^strategy\.strategy\.min_train_nodes: is 2 but a stage of this "
                                          r"scenario has only 1 site\(s\); set strategy\.strategy\.min_train_nodes=1$"):
        check_strategy_fits(wrapper, 1)


@pytest.mark.parametrize(
    ("config", "key", "words"),
    [
        ({}, "strategy._target_", "missing"),
        ({"_target_": "nowhere.Strategy"}, "strategy._target_",
         "cannot import 'nowhere.Strategy': ModuleNotFoundError: No module named 'nowhere'"),
        ({"_target_": "not_a_strategy.Averager"}, "strategy._target_", "is not a flwr.serverapp.strategy.Strategy"),
        ({"_target_": "flwr.serverapp.strategy.FedAvg", "momentum": 0.9}, "strategy",
         "flwr.serverapp.strategy.FedAvg: FedAvg.__init__() got an unexpected keyword argument 'momentum'"),
        (_clipped({"_target_": "nowhere.Strategy"}), "strategy.strategy._target_",
         "cannot import 'nowhere.Strategy': ModuleNotFoundError: No module named 'nowhere'"),
        (_clipped({"_target_": "flwr.serverapp.strategy.FedAvg", "momentum": 0.9}), "strategy.strategy",
         "FedAvg.__init__() got an unexpected keyword argument 'momentum'"),
        # ours: their argument models name the key and the reason
        ({"_target_": "strategies.ewc.EWC", "momentum": 0.9}, "strategy", "unknown keys ['momentum'] (known: ["),
        ({"_target_": "strategies.ewc.EWC", "weight": -1.0}, "strategy.weight",
         "must be greater than or equal to 0 (got -1.0)"),
        ({"_target_": "strategies.pga.PGA", "fraction_train": 2.0}, "strategy.fraction_train",
         "must be less than or equal to 1 (got 2.0)"),
        (_clipped({"_target_": "strategies.pga.PGA", "pseudo_domains": -1}), "strategy.strategy.pseudo_domains",
         "must be greater than or equal to 0 (got -1)"),
    ],
)
def test_plug_in_errors_name_the_key(config, key, words):
    with pytest.raises(ConfigError) as raised:
        build_strategy(config)
    assert raised.value.key == key and words in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_strategy_of_ours_wrapped_by_flowers_is_built_from_its_checked_arguments():
    wrapper = build_strategy(_clipped({"_target_": "strategies.pga.PGA", "alpha": 0.01, **NODE_MINIMA}))
    assert isinstance(wrapper.strategy, PGA) and wrapper.strategy.options.alpha == 0.01
    assert wrapper.strategy.server_steps == PGAArguments().server_steps


class TunedPGA(PGA):
    """A user's PGA that changes no constructor: PGA's argument model still describes it."""


def test_the_argument_model_is_that_of_the_class_whose_constructor_runs():
    assert argument_model(PGA) is PGAArguments and argument_model(TunedPGA) is PGAArguments
    assert argument_model(FedAvg) is None  # Flower's: built as Hydra builds it
    assert argument_model(FrozenFedAvg) is None  # a user's own constructor, without a model


def test_node_minima_larger_than_a_stage_are_refused():
    check_strategy_fits(FedAvg(min_available_nodes=1, min_train_nodes=1, min_evaluate_nodes=1), 1)
    with pytest.raises(ConfigError, match="strategy.min_available_nodes: is 2 but a stage of this scenario has only 1"):
        check_strategy_fits(FedAvg(min_available_nodes=2, min_train_nodes=1, min_evaluate_nodes=1), 1)


def test_only_client_side_dp_wrappers_have_the_sites_clip_their_updates():
    fedavg = FedAvg()
    assert train_mods(fedavg) == []
    assert train_mods(DifferentialPrivacyServerSideFixedClipping(fedavg, 1.0, 1.0, 3)) == []
    assert train_mods(DifferentialPrivacyClientSideFixedClipping(fedavg, 1.0, 1.0, 3)) == [fixedclipping_mod]
    adaptive = DifferentialPrivacyClientSideAdaptiveClipping(fedavg, 1.0, 3, clipped_count_stddev=1.0)
    assert train_mods(adaptive) == [adaptiveclipping_mod]
