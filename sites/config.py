"""Config nodes as typed objects, and the one translation of their errors into :class:`ConfigError`.

A node is a :class:`ConfigModel` (pydantic, frozen, strict, unknown keys refused) validated once at
the entry point with :func:`parse`; an object chosen by class (a task, a strategy) is built from its
``_target_`` node with :func:`instantiate`. Either way a mistake becomes one line naming the
dotted key at fault.

Our classes built from a node declare their constructor's arguments as one :class:`ConfigModel`,
the class attribute ``arguments`` (e.g. ``arguments = GradingArguments``): documented and given
their defaults there, validated by :func:`instantiate` before the constructor runs, which then
takes the validated fields as keyword arguments and checks nothing itself. The model describes
the constructor of the class that declares it (:func:`argument_model`); a class without one
(Flower's, a user's) is built by Hydra from the node's values as they are.
"""

import re
from collections.abc import Mapping
from typing import Any

from hydra._internal.utils import _locate as hydra_locate
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from .errors import ConfigError, MedsitesError

# How pydantic's messages read after the key; the others have "Input should be" -> "must be".
_WORDING = {"missing": "is required", "too_short": "must hold at least {min_length} item(s)"}
# Error types whose message says everything (no "(got ...)" after it).
_OWN_WORDS = ("missing", "unknown_keys", "config")


def check_keys(config: Mapping, known: list[str]) -> None:
    """Refuse keys of ``config`` outside ``known`` (a typo would otherwise be ignored), in a
    validator of the node."""
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise PydanticCustomError("unknown_keys", "unknown keys {unknown} (known: {known})",
                                  {"unknown": str(unknown), "known": str(sorted(known))})


def invalid(at: str, problem: str) -> PydanticCustomError:
    """The error a validator raises for a value that does not fit the rest of its node: ``at``
    names the key below the node (``"stages.1"``), ``problem`` says what is wrong."""
    return PydanticCustomError("config", "{problem}", {"problem": problem, "at": at})


class ConfigModel(BaseModel):
    """A config node: frozen, strict (no ``"3"`` for 3, no ``true`` for 1) and closed to unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_keys(cls, config: Any) -> Any:
        # Before pydantic's own refusal (one error per key), to name them all with the known ones.
        if isinstance(config, Mapping):
            check_keys(config, list(cls.model_fields))
        return config

    def replace(self, **changes: Any) -> "ConfigModel":
        """A copy with ``changes``, validated like the original (as :func:`dataclasses.replace`)."""
        return type(self)(**{**dict(self), **changes})


def parse(kind: Any, config: Any, key: str | None = None) -> Any:
    """Validate ``config`` as ``kind`` (a :class:`ConfigModel` or any type pydantic validates).

    Parameters
    ----------
    kind : type
        What the node must be.
    config : Any
        The node as Hydra resolved it (plain dicts and lists).
    key : str, optional
        The node's dotted key; ``None`` for the whole config (named ``config`` in errors).

    Raises
    ------
    ConfigError
        For the first problem, naming its full dotted key, e.g. ``scenario.sites.2.scanner.noise``.
    """
    try:
        return TypeAdapter(kind).validate_python(config)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        context = first.get("ctx", {})
        parts = [key, *map(str, first["loc"]), context.get("at")]
        raise ConfigError(".".join(p for p in parts if p) or "config", _reason(first)) from None


def _reason(error: dict) -> str:
    if error["type"] in _WORDING:
        words = _WORDING[error["type"]].format(**error.get("ctx", {}))
    else:
        words = error["msg"].replace("Input should be", "must be")
    return words if error["type"] in _OWN_WORDS else f"{words} (got {error['input']!r})"


class NoArguments(ConfigModel):
    """The arguments of a class that takes none: any key is refused."""


def argument_model(cls: type) -> type[ConfigModel] | None:
    """The :class:`ConfigModel` of ``cls``'s constructor: the ``arguments`` of the nearest class
    in its MRO that declares ``arguments`` or ``__init__``, if that class declares ``arguments``
    (``None``: a constructor without a model, e.g. Flower's or a user's)."""
    for owner in cls.__mro__:
        if "arguments" in vars(owner):
            return vars(owner)["arguments"]
        if "__init__" in vars(owner):
            return None
    return None


def instantiate(config: Mapping[str, Any], key: str, base: type, kind: str) -> Any:
    """Build ``config['_target_']``, which must subclass ``base``, with the node's other keys as
    its arguments. Nested ``_target_`` nodes among them are built first, the same way; a class
    with an argument model (:func:`argument_model`) gets its arguments validated by it, any
    other target is built by Hydra (lists and dicts arrive plain).

    Parameters
    ----------
    config : Mapping
        The config node.
    key : str
        Its dotted config key (``task``, ``strategy``), used in error messages.
    base : type
        The class the target must subclass.
    kind : str
        How ``base`` is named to the user, e.g. ``flwr.serverapp.strategy.Strategy``.

    Raises
    ------
    ConfigError
        ``<key>._target_`` (or a nested node's) when it is missing, cannot be imported or is not a
        ``base``; ``<key>.<argument>`` for an argument its model refuses; ``<key>`` when a
        constructor without a model refuses the arguments.
    """
    target = config.get("_target_")
    if not target:
        raise ConfigError(f"{key}._target_", f"missing: name a {kind} subclass")
    cls = _locate(target, key)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{key}._target_", f"{target} is not a {kind} subclass")
    return _build(config, key)


def _locate(target: str, key: str) -> Any:
    """What ``target`` names, found as Hydra finds it."""
    try:
        return hydra_locate(target)
    except ImportError as error:  # Hydra's, around the import's own error
        cause = error.__cause__ or error
        raise ConfigError(f"{key}._target_", f"cannot import {target!r}: {type(cause).__name__}: {cause}") from None


def _build(node: Mapping[str, Any], key: str) -> Any:
    """The object of the ``_target_`` node ``node`` at ``key``, its nested nodes built first."""
    target = node["_target_"]
    nested = {name: _build(value, f"{key}.{name}") for name, value in node.items()
              if isinstance(value, Mapping) and "_target_" in value}
    located = _locate(target, key)
    model = argument_model(located) if isinstance(located, type) else None
    if model is None:
        plain = {name: value for name, value in node.items() if name not in nested}
        try:
            return hydra_instantiate(plain, _convert_="all", **nested)
        except InstantiationException as error:
            raise _short(error, key, target) from None
    arguments = parse(model, {name: value for name, value in node.items() if name != "_target_"} | nested, key)
    try:
        return located(**dict(arguments))
    except TypeError as error:
        raise ConfigError(key, f"{target}: {error}") from None


def _short(error: InstantiationException, key: str, target: str) -> MedsitesError:
    """Hydra's multi-line message about the node of ``target`` at ``key`` as one
    :class:`ConfigError` naming the node at fault (it, or a node Hydra built inside it)."""
    cause, message = error.__cause__, str(error)
    if isinstance(cause, MedsitesError):  # a constructor's own clear error
        return cause
    nested = re.search(r"^full_key: (.+)$", message, re.MULTILINE)
    if nested:
        key = f"{key}.{nested.group(1)}"
        named = re.search(r"target '([^']+)'", message)
        target = named.group(1) if named else "?"
    if isinstance(cause, ImportError):  # Hydra's, around the import's own error
        cause = cause.__cause__ or cause
        return ConfigError(f"{key}._target_", f"cannot import {target!r}: {type(cause).__name__}: {cause}")
    return ConfigError(key, f"{target}: {cause if cause is not None else message.splitlines()[0]}")
