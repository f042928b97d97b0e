"""Objects chosen in config by ``_target_`` (tasks, strategies), with errors that name the key."""

import importlib
from typing import Any

from .errors import ConfigError


def instantiate(config: dict[str, Any], key: str, base: type, kind: str) -> Any:
    """Build ``config['_target_']``, which must subclass ``base``, with the other keys as arguments.

    Parameters
    ----------
    config : dict
        The config node.
    key : str
        Its dotted config key (``task``, ``strategy``), used in error messages.
    base : type
        The class the target must subclass.
    kind : str
        How ``base`` is named to the user, e.g. ``flwr.serverapp.strategy.Strategy``.
    """
    config = dict(config)
    target = config.pop("_target_", None)
    if not target:
        raise ConfigError(f"{key}._target_", f"missing: name a {kind} subclass")
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except Exception as error:  # a user's module may fail to import in any way
        raise ConfigError(f"{key}._target_", f"cannot import {target!r}: {type(error).__name__}: {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{key}._target_", f"{target} is not a {kind} subclass")
    try:
        return cls(**config)
    except TypeError as error:
        raise ConfigError(key, f"{target}: {error}") from None
