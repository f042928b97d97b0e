"""The scenario timeline: which sites exist, which train at each stage, which are held out."""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Literal

from pydantic import Field, PositiveInt, model_validator

from sites.config import ConfigModel, invalid
from sites.spec import SiteConfig, SiteId, SiteSpec

from .privacy_audit import AuditConfig

#: Why a site withdraws; each reason gives the withdrawing site its phenomenon (docs/design.md#unlearning).
Reason = Literal["privacy", "incorrectness"]


class Withdrawal(ConfigModel):
    """A site leaves the federation after a stage and its contribution is unlearned (an entry
    of ``scenario.withdrawals``).

    Parameters
    ----------
    site : str
        Id of the withdrawing site.
    stage : int
        1-based stage after whose evaluation the site withdraws; it trains in no later stage.
    """

    site: SiteId
    stage: int


class ScenarioConfig(ConfigModel):
    """The ``scenario`` config node; references between its keys are checked too.

    Parameters
    ----------
    name : str
        Scenario name, for reports.
    schedule : str
        ``sequential`` (sites train in their own stage) or ``joint`` (every training site
        trains in every stage: the upper bound).
    rounds_per_stage : int
        Federated rounds in every stage.
    sites : list of SiteConfig
        Every site, in order (the order seeds their data).
    stages : list of list of str
        The ids of the sites that first train in each stage.
    held_out : list of str
        Sites that never train but are evaluated after every stage.
    audit : AuditConfig or None
        Run the privacy audit after the timeline.
    withdrawals : list of Withdrawal
        Sites that withdraw after a stage.
    reason : str or None
        Why they withdraw (needed when some do): ``privacy`` (their patients carry identifying
        markers) or ``incorrectness`` (their training labels are wrong by the task's rule).
    """

    name: str = "scenario"
    schedule: Literal["sequential", "joint"] = "sequential"
    rounds_per_stage: PositiveInt
    sites: Annotated[list[SiteConfig], Field(min_length=1)]
    stages: Annotated[list[Annotated[list[SiteId], Field(min_length=1)]], Field(min_length=1)]
    held_out: list[SiteId] = []
    audit: AuditConfig | None = None
    withdrawals: list[Withdrawal] = []
    reason: Reason | None = None

    def arrivals(self) -> dict[str, int]:
        """Site id -> the stage it first trains in (1 for every training site when ``joint``)."""
        first = {site: t for t, members in enumerate(self.stages, start=1) for site in members}
        return {site: 1 for site in first} if self.schedule == "joint" else first

    def stage_sites(self) -> list[tuple[str, ...]]:
        """The ids of the sites that train in each stage, the withdrawn ones left out."""
        arrival = self.arrivals()
        training = [site.id for site in self.sites if site.id in arrival]
        stages = [training if self.schedule == "joint" else members for members in self.stages]
        gone = [{w.site for w in self.withdrawals if w.stage < t} for t in range(1, len(stages) + 1)]
        return [tuple(site for site in members if site not in out) for members, out in zip(stages, gone)]

    @model_validator(mode="after")
    def _check_references(self) -> "ScenarioConfig":
        ids = [site.id for site in self.sites]
        for i, site_id in enumerate(ids):
            if site_id in ids[:i]:
                raise invalid(f"sites.{i}.id", f"duplicate site id {site_id!r}")
        trains: dict[str, int] = {}
        for t, members in enumerate(self.stages, start=1):
            for site_id in members:
                _check_known(f"stages.{t - 1}", site_id, ids)
                if site_id in trains:
                    raise invalid(f"stages.{t - 1}", f"site {site_id!r} already trains in stage {trains[site_id]}")
                trains[site_id] = t
        for site_id in self.held_out:
            _check_known("held_out", site_id, ids)
            if site_id in trains:
                raise invalid("held_out", f"site {site_id!r} trains in stage {trains[site_id]}")
        for site_id in ids:
            if site_id not in trains and site_id not in self.held_out:
                raise invalid("stages", f"site {site_id!r} is in no stage; "
                              "list it in scenario.held_out to evaluate it without training")
        self._check_withdrawals(ids)
        for t, members in enumerate(self.stage_sites()):
            if not members:
                raise invalid(f"stages.{t}", "every site of this stage has withdrawn before it")
        return self

    def _check_withdrawals(self, ids: list[str]) -> None:
        arrival, n_stages = self.arrivals(), len(self.stages)
        for i, withdrawal in enumerate(self.withdrawals):
            site, stage, key = withdrawal.site, withdrawal.stage, f"withdrawals.{i}"
            _check_known(f"{key}.site", site, ids)
            if site not in arrival:
                raise invalid(f"{key}.site", f"site {site!r} never trains, so there is nothing to withdraw")
            if any(w.site == site for w in self.withdrawals[:i]):
                raise invalid(f"{key}.site", f"site {site!r} already withdraws")
            if not 1 <= stage <= n_stages:
                raise invalid(f"{key}.stage", f"must be a stage number in 1..{n_stages} (got {stage!r})")
            if stage < arrival[site]:
                raise invalid(f"{key}.stage", f"site {site!r} withdraws after stage {stage} but only arrives "
                              f"in stage {arrival[site]}")
        if self.withdrawals and self.reason is None:
            raise invalid("reason", "must be privacy or incorrectness when sites withdraw (got None)")


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

    def first_arrival(self, withdrawal: Withdrawal) -> int:
        """The earliest arrival among the sites gone at ``withdrawal``: the checkpoint before it
        holds none of them (a site withdrawn earlier may have arrived before this one)."""
        return min(self.arrival_of(site) for site in self.gone_at(withdrawal))

    def training_rounds(self, site: str) -> int:
        """Rounds of every phase in which ``site`` trains, over the whole timeline."""
        return sum(stage.rounds for stage in self.stages if site in stage.sites)

    @classmethod
    def from_config(cls, config: ScenarioConfig) -> "Scenario":
        """The timeline a validated ``scenario`` node describes."""
        withdrawals = tuple(sorted(config.withdrawals, key=lambda w: w.stage))
        reason = config.reason if withdrawals else None
        arrival = config.arrivals()
        sites = [_with_reason(SiteSpec(**dict(site), index=i, arrival=arrival.get(site.id)), reason, withdrawals)
                 for i, site in enumerate(config.sites)]
        stages = tuple(Stage(t, members, config.rounds_per_stage)
                       for t, members in enumerate(config.stage_sites(), start=1))
        return cls(config.name, tuple(sites), stages, tuple(config.held_out), config.schedule, config.audit,
                   withdrawals, reason)


def stage_steps(stages: Iterable[Stage], per_round: int) -> Counter[str]:
    """Site id -> the local steps it takes training ``stages``, at ``per_round`` steps per round."""
    steps: Counter[str] = Counter()
    for stage in stages:
        steps.update({site: stage.rounds * per_round for site in stage.sites})
    return steps


def _with_reason(site: SiteSpec, reason: str | None, withdrawals: Sequence[Withdrawal]) -> SiteSpec:
    """A withdrawing site carries its reason's phenomenon: identifying markers on every patient
    (unless the site sets its own ``marker_rate`` above 0) or corrupted training labels."""
    if site.id not in {w.site for w in withdrawals}:
        return site
    if reason == "privacy":  # marker_rate 0 is the default, so "not set"
        return site.replace(marker_rate=site.marker_rate or 1.0)
    return site.replace(corrupt_labels=True)


def _check_known(key: str, site_id: str, ids: list[str]) -> None:
    if site_id not in ids:
        raise invalid(key, f"unknown site {site_id!r} (known: {', '.join(ids)})")
