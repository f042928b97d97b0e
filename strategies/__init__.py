"""Flower strategies (Message API) and how one is chosen from config.

Any ``flwr.serverapp.strategy.Strategy`` subclass, Flower's own or a user's, plugs in with
``strategy._target_=module.Class`` and its constructor arguments as ``strategy.<arg>=...``;
a strategy that wraps another (Flower's differential-privacy wrappers) names it under
``strategy.strategy``.
"""

from .loading import build_strategy, check_strategy_fits
from .site_mods import train_mods

__all__ = ["build_strategy", "check_strategy_fits", "train_mods"]
