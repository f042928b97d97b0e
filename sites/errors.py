"""Errors a user can act on.

Every layer raises these instead of bare exceptions so that the entry point can print one
clear line (naming the config key, the site or the file) and exit non-zero.
"""

from collections.abc import Iterable, Mapping


class MedsitesError(Exception):
    """Base class: a problem the user can fix, described in one message."""


class ConfigError(MedsitesError):
    """A config value is missing, unknown or out of range.

    Parameters
    ----------
    key : str
        The dotted config key at fault, e.g. ``scenario.rounds_per_stage``.
    problem : str
        What is wrong with it and, where it helps, what would be right.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}")


class SiteError(MedsitesError):
    """A site could not do its part (its data, its training, its evaluation).

    Parameters
    ----------
    site : str
        The site id.
    problem : str
        What went wrong at the site.
    """

    def __init__(self, site: str, problem: str) -> None:
        self.site = site
        super().__init__(f"site {site}: {problem}")


def refuse_unknown_keys(key: str, config: Mapping, known: Iterable[str]) -> None:
    """Raise a :class:`ConfigError` naming ``key`` if the config node ``config`` holds keys
    outside ``known`` (a typo would otherwise be silently ignored)."""
    known = sorted(known)
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ConfigError(key, f"unknown keys {unknown} (known: {known})")
