"""Flower strategies (Message API) and how one is chosen from config.

Any ``flwr.serverapp.strategy.Strategy`` subclass, Flower's own or a user's, plugs in with
``strategy._target_=module.Class`` and its constructor arguments as ``strategy.<arg>=...``.
"""

from .loading import build_strategy, check_strategy_fits

__all__ = ["build_strategy", "check_strategy_fits"]
