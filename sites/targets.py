"""Objects chosen in config by ``_target_`` (tasks, strategies), with errors that name the key."""

from typing import Any

from hydra.utils import get_class

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
    try:
        cls = get_class(target)
    except Exception as error:  # hydra wraps import failures in several types
        raise ConfigError(f"{key}._target_", f"cannot import {target!r}: {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{key}._target_", f"{target} is not a {kind} subclass")
    try:
        return cls(**config)
    except TypeError as error:
        raise ConfigError(key, f"{target}: {error}") from None
