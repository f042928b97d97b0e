"""The scenario timeline: which sites exist, which train at each stage, which are held out."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sites.errors import ConfigError, refuse_unknown_keys
from sites.spec import SiteSpec

from .privacy_audit import AuditConfig

SCHEDULES = ("sequential", "joint")
#: The keys of a ``scenario`` config node.
KEYS = ("name", "schedule", "rounds_per_stage", "sites", "stages", "held_out", "audit", "withdrawals", "reason")
#: Why a site withdraws; each reason gives the withdrawing site its phenomenon (DESIGN.md §1.4).
REASONS = ("privacy", "incorrectness")


@dataclass(frozen=True)
class Withdrawal:
    """A site leaves the federation after a stage and its contribution is unlearned.

    Parameters
    ----------
    site : str
        Id of the withdrawing site.
    stage : int
        1-based stage after whose evaluation the site withdraws; it trains in no later stage.
    """

    site: str
    stage: int


@dataclass(frozen=True)
class Stage:
    """One stage of the timeline.

    Parameters
    ----------
    index : int
        1-based stage number (row ``t`` of R).
    sites : tuple of str
        Ids of the sites that train during this stage.
    rounds : int
        Federated rounds in this stage.
    """

    index: int
    sites: tuple[str, ...]
    rounds: int


@dataclass(frozen=True)
class Scenario:
    """A validated timeline.

    Parameters
    ----------
    name : str
        Scenario name, for reports.
    sites : tuple of SiteSpec
        Every site, in config order, with ``arrival`` filled in.
    stages : tuple of Stage
        The stages in order.
    held_out : tuple of str
        Sites that never train but are evaluated after every stage.
    schedule : str
        ``sequential`` (sites train in their own stage) or ``joint`` (every training site
        trains in every stage: the upper bound).
    audit : AuditConfig or None
        Run the privacy audit after the timeline (``scenario.audit``).
    withdrawals : tuple of Withdrawal
        Sites that withdraw, in timeline order (``scenario.withdrawals``).
    reason : str or None
        Why they withdraw (``scenario.reason``): ``privacy`` (their patients carry identifying
        markers) or ``incorrectness`` (their training labels are wrong by the task's rule).
    """

    name: str
    sites: tuple[SiteSpec, ...]
    stages: tuple[Stage, ...]
    held_out: tuple[str, ...]
    schedule: str
    audit: AuditConfig | None = None
    withdrawals: tuple[Withdrawal, ...] = ()
    reason: str | None = None

    @property
    def site_ids(self) -> list[str]:
        return [site.id for site in self.sites]

    def seen_by(self, stage: int) -> list[str]:
        """Ids of the sites that have trained by the end of ``stage`` (1-based)."""
        return [s.id for s in self.sites if s.arrival is not None and s.arrival <= stage]

    def withdrawals_after(self, stage: int) -> list[Withdrawal]:
        """The withdrawals that happen after ``stage``, in the order they are handled."""
        return [w for w in self.withdrawals if w.stage == stage]

    def gone_at(self, withdrawal: Withdrawal) -> list[str]:
        """Ids of the sites that are out once ``withdrawal`` is handled: it and every withdrawal
        handled before it (earlier stages, or earlier in the list for the same stage)."""
        return [w.site for w in self.withdrawals[:self.withdrawals.index(withdrawal) + 1]]

    def replay_stages(self, withdrawal: Withdrawal, first_stage: int = 1) -> list[Stage]:
        """Stages ``first_stage`` .. ``withdrawal.stage`` without the sites gone at ``withdrawal``
        (stages left empty dropped): what retraining and rewinding train again."""
        gone = set(self.gone_at(withdrawal))
        stages = [replace(stage, sites=tuple(s for s in stage.sites if s not in gone))
                  for stage in self.stages[first_stage - 1:withdrawal.stage]]
        return [stage for stage in stages if stage.sites]

    def arrival_of(self, site: str) -> int | None:
        return next(s.arrival for s in self.sites if s.id == site)

    def training_rounds(self, site: str) -> int:
        """Rounds of every phase in which ``site`` trains, over the whole timeline."""
        return sum(stage.rounds for stage in self.stages if site in stage.sites)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Scenario":
        """Validate a ``scenario`` config node; every problem names its key."""
        refuse_unknown_keys("scenario", config, KEYS)
        sites = [SiteSpec.from_config(i, raw) for i, raw in enumerate(_list(config, "sites"))]
        ids = [site.id for site in sites]
        for i, site_id in enumerate(ids):
            if site_id in ids[:i]:
                raise ConfigError(f"scenario.sites.{i}.id", f"duplicate site id {site_id!r}")
        if not sites:
            raise ConfigError("scenario.sites", "needs at least one site")

        rounds = config.get("rounds_per_stage")
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
            raise ConfigError("scenario.rounds_per_stage", f"must be an integer >= 1 (got {rounds!r})")

        schedule = config.get("schedule", "sequential")
        if schedule not in SCHEDULES:
            raise ConfigError("scenario.schedule", f"must be one of {list(SCHEDULES)} (got {schedule!r})")

        stages_raw = _list(config, "stages")
        if not stages_raw:
            raise ConfigError("scenario.stages", "needs at least one stage")
        arrival: dict[str, int] = {}
        for t, members in enumerate(stages_raw, start=1):
            key = f"scenario.stages.{t - 1}"
            if isinstance(members, str) or not isinstance(members, Sequence) or len(members) == 0:
                raise ConfigError(key, "a stage is a non-empty list of site ids")
            for site_id in map(str, members):
                _check_known(key, site_id, ids)
                if site_id in arrival:
                    raise ConfigError(key, f"site {site_id!r} already trains in stage {arrival[site_id]}")
                arrival[site_id] = t

        held_out = [str(s) for s in _list(config, "held_out")]
        for site_id in held_out:
            _check_known("scenario.held_out", site_id, ids)
            if site_id in arrival:
                raise ConfigError("scenario.held_out", f"site {site_id!r} trains in stage {arrival[site_id]}")
        for site_id in ids:
            if site_id not in arrival and site_id not in held_out:
                raise ConfigError("scenario.stages", f"site {site_id!r} is in no stage; "
                                  "list it in scenario.held_out to evaluate it without training")

        if schedule == "joint":
            training = tuple(s for s in ids if s in arrival)
            stages = tuple(Stage(t, training, rounds) for t in range(1, len(stages_raw) + 1))
            arrival = {s: 1 for s in training}
        else:
            stages = tuple(Stage(t, tuple(str(s) for s in members), rounds)
                           for t, members in enumerate(stages_raw, start=1))
        withdrawals, reason = _withdrawals(config, ids, arrival, len(stages))
        stages = tuple(_without_withdrawn(stage, withdrawals) for stage in stages)
        sites = [_with_reason(replace(site, arrival=arrival.get(site.id)), reason, withdrawals) for site in sites]
        return cls(str(config.get("name", "scenario")), tuple(sites), stages, tuple(held_out), schedule,
                   AuditConfig.from_config(config.get("audit")), withdrawals, reason)


def _withdrawals(config: Mapping[str, Any], ids: list[str], arrival: Mapping[str, int],
                 n_stages: int) -> tuple[tuple[Withdrawal, ...], str | None]:
    """Validate ``scenario.withdrawals`` (entries ``{site, stage}``) and ``scenario.reason``."""
    withdrawals: list[Withdrawal] = []
    for i, raw in enumerate(_list(config, "withdrawals")):
        key = f"scenario.withdrawals.{i}"
        if not isinstance(raw, Mapping) or set(raw) != {"site", "stage"}:
            raise ConfigError(key, f"a withdrawal is {{site: <id>, stage: <stage>}} (got {raw!r})")
        site, stage = str(raw["site"]), raw["stage"]
        _check_known(f"{key}.site", site, ids)
        if site not in arrival:
            raise ConfigError(f"{key}.site", f"site {site!r} never trains, so there is nothing to withdraw")
        if any(w.site == site for w in withdrawals):
            raise ConfigError(f"{key}.site", f"site {site!r} already withdraws")
        if not isinstance(stage, int) or isinstance(stage, bool) or not 1 <= stage <= n_stages:
            raise ConfigError(f"{key}.stage", f"must be a stage number in 1..{n_stages} (got {stage!r})")
        if stage < arrival[site]:
            raise ConfigError(f"{key}.stage", f"site {site!r} withdraws after stage {stage} but only arrives "
                              f"in stage {arrival[site]}")
        withdrawals.append(Withdrawal(site, stage))
    reason = config.get("reason")
    if withdrawals and reason not in REASONS:
        raise ConfigError("scenario.reason", f"must be one of {list(REASONS)} when sites withdraw (got {reason!r})")
    return tuple(sorted(withdrawals, key=lambda w: w.stage)), reason if withdrawals else None


def _without_withdrawn(stage: Stage, withdrawals: Sequence[Withdrawal]) -> Stage:
    gone = {w.site for w in withdrawals if w.stage < stage.index}
    remaining = tuple(site for site in stage.sites if site not in gone)
    if not remaining:
        raise ConfigError(f"scenario.stages.{stage.index - 1}", "every site of this stage has withdrawn before it")
    return replace(stage, sites=remaining)


def _with_reason(site: SiteSpec, reason: str | None, withdrawals: Sequence[Withdrawal]) -> SiteSpec:
    """A withdrawing site carries its reason's phenomenon: identifying markers on every patient
    (unless the site sets its own ``marker_rate`` above 0) or corrupted training labels."""
    if site.id not in {w.site for w in withdrawals}:
        return site
    if reason == "privacy":  # marker_rate 0 is the default, so "not set"
        return replace(site, marker_rate=site.marker_rate or 1.0)
    return replace(site, corrupt_labels=True)


def _list(config: Mapping[str, Any], key: str) -> list:
    value = config.get(key) or []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(f"scenario.{key}", f"must be a list (got {value!r})")
    return list(value)


def _check_known(key: str, site_id: Any, ids: list[str]) -> None:
    if str(site_id) not in ids:
        raise ConfigError(key, f"unknown site {site_id!r} (known: {', '.join(ids)})")
