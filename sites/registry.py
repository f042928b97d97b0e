"""Named classes of one kind, the built-in ones and a user's: a config names one by its
registered name or by its import path (``my_package.module.MyClass``), which every process
(the server's, each site's) can import without registering anything."""

import importlib
from typing import Generic, TypeVar

from .config import invalid
from .errors import ConfigError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes of one kind by name.

    Parameters
    ----------
    kind : str
        What the classes are, in words (errors name it).
    base : type
        The class every entry must subclass.
    """

    def __init__(self, kind: str, base: T) -> None:
        self.kind, self.base = kind, base
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, entry: T | str) -> None:
        """Make ``name`` stand for ``entry``: the class, or its import path (imported on first use,
        so that a class whose module is slow to import costs only the runs that use it)."""
        self._entries[name] = entry

    @property
    def names(self) -> list[str]:
        """The registered names, in the order they joined."""
        return list(self._entries)

    def get(self, name: str, key: str) -> T:
        """The class ``name`` stands for: a registered name, else an import path.

        Parameters
        ----------
        name : str
            A registered name or ``package.module.Class``.
        key : str
            The config key that named it (errors name it).

        Raises
        ------
        ConfigError
            ``name`` is neither registered nor the import path of a subclass of :attr:`base`.
        """
        entry = self._entries.get(name, name)
        if isinstance(entry, str):
            entry = self._import(entry, key)
            if name in self._entries:
                self._entries[name] = entry
        return entry

    def validated(self, name: str) -> str:
        """``name``, for a pydantic field validator: refused (the field's key named by pydantic)
        unless :meth:`get` finds its class."""
        try:
            self.get(name, "")
        except ConfigError as error:
            raise invalid("", error.problem) from None
        return name

    def _import(self, path: str, key: str) -> T:
        module, _, attribute = path.rpartition(".")
        expected = (f"must be one of {', '.join(map(repr, self.names))} or the import path of a {self.kind} "
                    f"class ({self.base.__module__}.{self.base.__name__})")
        if not module:
            raise ConfigError(key, f"{expected} (got {path!r})")
        try:
            found = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as error:
            raise ConfigError(key, f"{expected}; cannot import {path!r}: {type(error).__name__}: {error}") from None
        if not (isinstance(found, type) and issubclass(found, self.base)):
            raise ConfigError(key, f"{expected} (got {path!r}, which is not one)")
        return found

