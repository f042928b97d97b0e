"""The records a run writes beside R, typed: a failed site call (``summary.json``'s
``failures``, ``metrics.jsonl``'s ``failure`` events), a withdrawal (``withdrawal.json``), the
privacy audit (``privacy_audit.json``) and the replay source's report (``replay.json``). Each
has ``to_dict()``, the JSON-ready dict the file holds (keys in the order written), and
``from_dict()``, its inverse, for the readers (reports, benchmarks)."""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Self

from sites.protocol import AuditReply

#: Model (``before``, ``after``, ``oracle``) -> subset (``forget``, ``retain``, ``test``) -> value.
Performance = dict[str, dict[str, float | None]]


@dataclass(frozen=True)
class Failure:
    """A site call that failed during training: the site went down or replied invalidly.

    Parameters
    ----------
    stage, round : int
        Where in the timeline (the round the call belonged to).
    site : str
        The site.
    message : str
        The message type of the call.
    reason : str
        What went wrong.
    """

    stage: int
    round: int
    site: str
    message: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Self:
        return cls(**record)


@dataclass(frozen=True)
class BeforeAfter:
    """A figure before and after a withdrawal."""

    before: float
    after: float


@dataclass(frozen=True)
class SiteSpend:
    """What a withdrawal spent of one site's privacy budget.

    Parameters
    ----------
    role : str
        ``forget`` (the withdrawing site) or ``retain``.
    steps : BeforeAfter
        The site accountant's DP-SGD steps.
    epsilon : BeforeAfter
        Its epsilon at the run's delta.
    """

    role: str
    steps: BeforeAfter
    epsilon: BeforeAfter

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Self:
        return cls(record["role"], BeforeAfter(**record["steps"]), BeforeAfter(**record["epsilon"]))


@dataclass(frozen=True)
class WithdrawalPrivacy:
    """A withdrawal record's ``privacy`` (runs with DP): each involved site's spend, in report
    order (:func:`~server.withdrawal_privacy.privacy_record`).

    Parameters
    ----------
    delta : float
        The delta of the sites' guarantee.
    sites : dict
        Site id -> :class:`SiteSpend`.
    """

    delta: float
    sites: dict[str, SiteSpend]

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Self:
        return cls(record["delta"], {site: SiteSpend.from_dict(spend) for site, spend in record["sites"].items()})


@dataclass(frozen=True)
class UnlearningSpend:
    """What one withdrawal's unlearning spent at a site that took DP-SGD steps for it (the
    privacy audit's ``unlearning``, :func:`~server.withdrawal_privacy.unlearning_spent`).

    Parameters
    ----------
    withdrawn : str
        The withdrawn site.
    stage : int
        The stage after which it withdrew.
    method : str
        The unlearning method.
    steps : int
        The DP-SGD steps the site took for it.
    epsilon : BeforeAfter
        The site's epsilon before and after the withdrawal.
    """

    withdrawn: str
    stage: int
    method: str
    steps: int
    epsilon: BeforeAfter

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Self:
        return cls(**{**record, "epsilon": BeforeAfter(**record["epsilon"])})


@dataclass(frozen=True)
class WithdrawalRecord:
    """One site withdrawal (:class:`~server.withdrawal.WithdrawalEvent`): an entry of
    ``withdrawal.json``.

    Parameters
    ----------
    site : str
        The withdrawn site.
    stage : int
        The stage after which it withdrew.
    reason : str
        ``privacy`` or ``incorrectness``.
    method : str
        The unlearning method.
    metric : str
        The task's primary metric, which :attr:`performance` holds.
    subsets : dict
        ``forget``, ``retain``, ``test`` -> their sites.
    performance : Performance
        Model -> subset -> the metric averaged over the subset's sites.
    per_site : dict
        Model -> subset -> site -> the metric.
    scores : dict or None
        s_F, s_R, s_T and UES (:func:`~server.ues.unlearning_efficiency`); ``None`` where a
        subset's metric is undefined.
    seconds, retrain_seconds : float
        The method's wall time and the oracle's retraining time.
    cost_ratio : float or None
        ``seconds / retrain_seconds``.
    mia_forget_auc : dict
        Model -> the loss attack's AUC on the forget set.
    privacy : WithdrawalPrivacy, optional
        With DP, what the withdrawal spent at each involved site.
    """

    site: str
    stage: int
    reason: str
    method: str
    metric: str
    subsets: dict[str, list[str]]
    performance: Performance
    per_site: dict[str, dict[str, dict[str, float | None]]]
    scores: dict[str, float | None] | None
    seconds: float
    retrain_seconds: float
    cost_ratio: float | None
    mia_forget_auc: dict[str, float]
    privacy: WithdrawalPrivacy | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        if self.privacy is None:
            del record["privacy"]
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Self:
        privacy = record.get("privacy")
        return cls(**{**record, "privacy": None if privacy is None else WithdrawalPrivacy.from_dict(privacy)})


@dataclass(frozen=True)
class Verdict:
    """A site's exposure level in the privacy audit and the reasons, in plain words
    (:func:`~server.privacy_audit.judge`).

    Parameters
    ----------
    level : str
        ``low``, ``moderate``, ``high`` or ``inconclusive``.
    explanation : str
        Why.
    """

    level: str
    explanation: str


@dataclass(frozen=True)
class SiteAudit:
    """One site in the privacy audit.

    Parameters
    ----------
    reply : AuditReply
        The site's attack figures.
    verdict : Verdict
        What they mean.
    unlearning : list of UnlearningSpend
        The withdrawals whose unlearning spent budget at the site.
    """

    reply: AuditReply
    verdict: Verdict
    unlearning: list[UnlearningSpend] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        unlearning = {"unlearning": [spend.to_dict() for spend in self.unlearning]} if self.unlearning else {}
        return {**dict(self.reply.to_record()), **unlearning, "verdict": asdict(self.verdict)}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Self:
        return cls(AuditReply.from_record(record), Verdict(**record["verdict"]),
                   [UnlearningSpend.from_dict(spend) for spend in record.get("unlearning", [])])


@dataclass(frozen=True)
class AuditRecord:
    """The privacy audit (``privacy_audit.json``, :func:`~server.privacy_audit.audit_result`).

    Parameters
    ----------
    delta : float or None
        The delta of the sites' DP guarantee (``None``: no DP).
    fpr_grid : list of float
        The false-positive rates of every ``-roc`` curve.
    levels : list of str
        The verdict levels, from least to most exposed, then ``inconclusive``.
    sites : dict
        Site id -> :class:`SiteAudit`, for every site that trained.
    dp_scope : dict, optional
        With DP, what epsilon covers (``covered``) and what left the sites outside it
        (``outside``): :func:`~server.privacy_audit.dp_scope`.
    """

    delta: float | None
    fpr_grid: list[float]
    levels: list[str]
    sites: dict[str, SiteAudit]
    dp_scope: dict[str, list[str]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"delta": self.delta, "fpr_grid": self.fpr_grid, "levels": self.levels,
                **({"dp_scope": self.dp_scope} if self.dp_scope else {}),
                "sites": {site: audit.to_dict() for site, audit in self.sites.items()}}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Self:
        return cls(record["delta"], record["fpr_grid"], record["levels"],
                   {site: SiteAudit.from_dict(audit) for site, audit in record["sites"].items()},
                   record.get("dp_scope"))


@dataclass(frozen=True)
class ReplayRecord:
    """What the replay source reports (``replay.json``).

    Parameters
    ----------
    source : str
        The source's name (``smd``, ``real``, a user's).
    private : bool
        Whether it kept the privacy rule (no data left the sites).
    figures : dict
        The source's own figures, in the order it reports them (``smd``: the generator's
        parameters, its training per site and stage, sampling seconds, samples per draw;
        ``real``: the exemplars kept per site).
    fidelity : dict, optional
        The generator's fidelity against the real data, measured after the run
        (``simulations/replay_fidelity.py``).
    """

    source: str
    private: bool
    figures: dict[str, Any] = field(default_factory=dict)
    fidelity: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "private": self.private, **self.figures,
                **({} if self.fidelity is None else {"fidelity": self.fidelity})}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Self:
        figures = {key: value for key, value in record.items() if key not in ("source", "private", "fidelity")}
        return cls(record["source"], record["private"], figures, record.get("fidelity"))
