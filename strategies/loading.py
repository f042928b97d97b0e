"""Build a Flower strategy from its config node, and check it can run on a timeline."""

from collections.abc import Mapping
from typing import Any

from flwr.serverapp.strategy import Strategy

from sites.config import instantiate
from sites.errors import ConfigError

from .capabilities import unwrapped

# Flower's sampling waits, without a time limit, until this many nodes are connected; through
# the stage view a strategy only ever sees the sites of the current stage.
_NODE_MINIMA = ("min_available_nodes", "min_train_nodes", "min_evaluate_nodes")


def build_strategy(config: Mapping[str, Any]) -> Strategy:
    """Instantiate ``config['_target_']`` with the remaining keys as keyword arguments; a
    strategy that wraps another (Flower's differential-privacy wrappers) takes it as a nested
    ``_target_`` node, e.g. ``strategy: {_target_: flwr.serverapp.strategy.FedAvg, ...}``."""
    return instantiate(config, "strategy", Strategy, "flwr.serverapp.strategy.Strategy")


def check_strategy_fits(strategy: Strategy, smallest_stage: int) -> None:
    """Refuse a strategy whose node minima (or a wrapped strategy's, which does the sampling)
    exceed the smallest stage (it would wait forever)."""
    for depth, layer in enumerate(unwrapped(strategy)):
        for attribute in _NODE_MINIMA:
            value = getattr(layer, attribute, None)
            key = ".".join(["strategy"] * (depth + 1) + [attribute])
            if isinstance(value, int) and value > smallest_stage:
                raise ConfigError(key, f"is {value} but a stage of this scenario has only {smallest_stage} "
                                  f"site(s); set {key}={smallest_stage}")
