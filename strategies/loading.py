"""Build a Flower strategy from its config node, and check it can run on a timeline."""

from typing import Any

from flwr.serverapp.strategy import Strategy

from sites.errors import ConfigError
from sites.targets import instantiate

# Flower's sampling waits, without a time limit, until this many nodes are connected; through
# the stage view a strategy only ever sees the sites of the current stage.
_NODE_MINIMA = ("min_available_nodes", "min_train_nodes", "min_evaluate_nodes")


def build_strategy(config: dict[str, Any]) -> Strategy:
    """Instantiate ``config['_target_']`` with the remaining keys as keyword arguments."""
    return instantiate(config, "strategy", Strategy, "flwr.serverapp.strategy.Strategy")


def check_strategy_fits(strategy: Strategy, smallest_stage: int) -> None:
    """Refuse a strategy whose node minima exceed the smallest stage (it would wait forever)."""
    for attribute in _NODE_MINIMA:
        value = getattr(strategy, attribute, None)
        if isinstance(value, int) and value > smallest_stage:
            raise ConfigError(
                f"strategy.{attribute}",
                f"is {value} but a stage of this scenario has only {smallest_stage} site(s); "
                f"set strategy.{attribute}={smallest_stage}",
            )
