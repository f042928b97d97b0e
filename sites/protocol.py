"""The protocol between the server and the sites, in one place: every message kind, the name
of every record a message carries, and a frozen dataclass for each record of entries (a
message's configuration, a reply's small records), with ``to_record()`` / ``from_record()``.

Flower's conventions hold on the wire: the model travels under ``arrays`` and the config under
``config`` (the keys Flower's strategies use), a training reply's metrics carry ``train_loss``
and ``num-examples`` (what Flower's strategies aggregate and weigh by; a DP site sends
``train_loss`` only as ``privacy.train_metrics`` says), FedProx's
``proximal-mu`` is understood, and a strategy may add entries of its own to any config (Flower
adds ``server-round``): ``from_record`` leaves the entries it does not own alone.

The messages (config dataclass sent -> records of the reply):

- ``query``: (no config) -> ``site`` (:class:`SiteIdentity`);
- ``query.data``: (no config) -> ``data`` (:class:`DataReport`);
- ``query.statistics``: :class:`StatisticsQuery` and the model -> ``statistics`` (the task's counts);
- ``train``: :class:`TrainConfig`, the model, and a strategy's ``replay`` / ``ewc-fisher`` /
  ``ewc-anchor`` -> the model, ``metrics`` and, with DP, ``accountant`` (:class:`AccountantHistory`);
- ``train.unlearn``: :class:`UnlearnConfig`, the model and the ``reference`` -> the model, ``metrics``
  and, with DP, ``accountant``;
- ``train.generator``: :class:`GeneratorConfig`, ``generator``, ``prompt`` and optionally ``replay``
  and ``replay-prompts`` -> ``generator``, ``prompt``, ``metrics``;
- ``query.fisher``: :class:`FisherQuery` and the model -> ``fisher``, ``metrics``;
- ``query.exemplars``: :class:`ExemplarsQuery` -> ``exemplars``;
- ``evaluate``: :class:`EvaluateConfig` and the model -> ``metrics``;
- ``query.audit``: :class:`AuditQuery` and the model -> ``audit`` (:class:`AuditReply`);
- ``query.resume``: :class:`NodeState` -> ``site`` (:class:`SiteIdentity`).
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, ClassVar, Self

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable, Mod


class RecordName:
    """The names of the records in a message's content."""

    #: The global model (or a site's trained copy): Flower's strategies' ``arrayrecord_key``.
    MODEL = "arrays"
    #: A message's configuration: Flower's strategies' ``configrecord_key``.
    CONFIG = "config"
    #: A reply's metrics.
    METRICS = "metrics"
    #: Samples of earlier sites (:mod:`sites.replay`), sent with training and generator training.
    REPLAY = "replay"
    #: The prompt tokens of each replayed site, sent with generator training.
    REPLAY_PROMPTS = "replay-prompts"
    #: EWC's summed Fisher information and the model it anchors to.
    EWC_FISHER = "ewc-fisher"
    EWC_ANCHOR = "ewc-anchor"
    #: The model before a withdrawal, which unlearning objectives compare against.
    REFERENCE = "reference"
    #: The replay generator's weights, and a site's prompt tokens.
    GENERATOR = "generator"
    PROMPT = "prompt"
    #: A site's diagonal Fisher information.
    FISHER = "fisher"
    #: Real training samples of a site (the real-buffer replay reference).
    EXEMPLARS = "exemplars"
    #: Which site a node plays (:class:`SiteIdentity`).
    SITE = "site"
    #: A site's split sizes (:class:`DataReport`).
    DATA = "data"
    #: Counts a task sums across sites before a phase.
    STATISTICS = "statistics"
    #: Membership-inference ROC summaries.
    AUDIT = "audit"
    #: A DP site's accountant history (:class:`AccountantHistory`).
    ACCOUNTANT = "accountant"


class RecordKind:
    """What kind of record a name holds (as replies are declared and described in ``metrics.jsonl``)."""

    ARRAYS = "arrays"
    METRICS = "metrics"
    CONFIG = "config"


class MetricKey:
    """Metrics the sites report that the other side reads."""

    #: The mean training loss of a training call (Flower's strategies read ``train_loss``).
    TRAIN_LOSS = "train_loss"
    #: Examples a site trained or evaluated on: Flower's strategies weigh by it.
    NUM_EXAMPLES = "num-examples"
    #: A DP site's privacy spent so far.
    EPSILON = "epsilon"
    #: The mean denoising loss of a generator-training call, and its duration.
    GENERATOR_LOSS = "generator-loss"
    SECONDS = "seconds"
    #: PGA's alignment in a training call: the mean cosine between the two gradients of its
    #: meta-objectives, and the share of the step's gradient the alignment contributes
    #: (:mod:`sites.alignment_meter`).
    PGA_ALIGNMENT = "pga-alignment"
    PGA_ALIGNMENT_SHARE = "pga-alignment-share"


#: ArrayRecords a strategy may send with a training message besides the model.
STRATEGY_ARRAYS = (RecordName.REPLAY, RecordName.EWC_FISHER, RecordName.EWC_ANCHOR)


def _key(spec: Field) -> str | None:
    """A field's key in its record: its ``key`` metadata, else its name with hyphens (``None``:
    the field is not one entry)."""
    return spec.metadata.get("key", spec.name.replace("_", "-"))


class Payload:
    """Base of the protocol's dataclasses: one record's entries, each field under its key
    (:func:`_key`); a field that is ``None`` is left out."""

    #: The Flower record type the entries travel in.
    record_type: ClassVar[type[ConfigRecord] | type[MetricRecord]] = ConfigRecord

    @classmethod
    def record_keys(cls) -> set[str]:
        """The keys this dataclass owns."""
        return {key for spec in fields(cls) if (key := _key(spec)) is not None}

    @classmethod
    def field_of(cls, key: str) -> str:
        """The name of the field whose entry is ``key``."""
        return next(spec.name for spec in fields(cls) if _key(spec) == key)

    def to_record(self) -> ConfigRecord | MetricRecord:
        return self.record_type(self._entries())

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Self:
        """The dataclass of ``record``'s entries; entries of keys it does not own are ignored
        (strategies add their own, e.g. Flower's ``server-round``)."""
        return cls(**cls._arguments(record))

    def _entries(self) -> dict[str, Any]:
        return {key: value for spec in fields(self)
                if (key := _key(spec)) is not None and (value := getattr(self, spec.name)) is not None}

    @classmethod
    def _arguments(cls, record: Mapping[str, Any]) -> dict[str, Any]:
        arguments = {}
        for spec in fields(cls):
            key = _key(spec)
            if key in record:
                arguments[spec.name] = record[key]
            elif key is not None and spec.default is MISSING and spec.default_factory is MISSING:
                raise ValueError(f"{cls.__name__}: the record has no {key!r} entry")
        return arguments


@dataclass(frozen=True)
class ReplayOptions(Payload):
    """How a site trains with replay: the replay strategies' part of the training config.

    Parameters
    ----------
    objective : str
        ``mix``: the loss of the current batch and a replay batch together (experience
        replay); ``pga``: PGA's meta-objectives.
    alpha, weight, orientational, arbitrary, second_order, inner_step, pseudo_domains
        With ``pga``: PGA's arguments of these names (``strategies.pga.PGAArguments`` documents
        them and gives their defaults); ``None`` (not sent) with ``mix``, which uses none.
    """

    objective: str = field(default="mix", metadata={"key": "replay-objective"})
    alpha: float | None = field(default=None, metadata={"key": "pga-alpha"})
    weight: float | None = field(default=None, metadata={"key": "pga-weight"})
    orientational: bool | None = field(default=None, metadata={"key": "pga-orientational"})
    arbitrary: bool | None = field(default=None, metadata={"key": "pga-arbitrary"})
    second_order: bool | None = field(default=None, metadata={"key": "pga-second-order"})
    inner_step: str | None = field(default=None, metadata={"key": "pga-inner-step"})
    pseudo_domains: int | None = field(default=None, metadata={"key": "pga-pseudo-domains"})

    @property
    def with_pseudo_domains(self) -> bool:
        """Whether PGA's generalizability (arbitrary) objective takes pseudo-domains: the only
        objective they serve."""
        return self.objective == "pga" and self.arbitrary and self.pseudo_domains > 0


@dataclass(frozen=True)
class TrainConfig(Payload):
    """The configuration of a training call (``train``), as the timeline and the strategy
    build it; also what :meth:`~sites.tasks.base.Task.train` runs with.

    Parameters
    ----------
    stage : int, optional
        The timeline's stage (1-based).
    phase : str
        The task's phase (:class:`~sites.tasks.base.Phase`) the call trains.
    local_steps : int, optional
        Overrides the task's steps of the phase (e.g. FedEraser's shorter calibration).
    lr : float, optional
        Overrides the task's learning rate.
    proximal_mu : float, optional
        FedProx's ``mu``: adds ``mu / 2 * ||w - w_global||^2`` to the loss (Flower's FedProx
        sends it).
    ewc_weight : float, optional
        EWC's λ, sent with the Fisher and anchor arrays.
    replay : ReplayOptions, optional
        How to train on the replay arrays (replay strategies).
    entries : dict
        Every other entry: the phase's own (:meth:`~sites.tasks.base.Task.phase_config`),
        Flower's ``server-round``, a user strategy's.
    """

    stage: int | None = None
    phase: str = "train"
    local_steps: int | None = None
    lr: float | None = None
    proximal_mu: float | None = None
    ewc_weight: float | None = None
    replay: ReplayOptions | None = field(default=None, metadata={"key": None})
    entries: dict[str, Any] = field(default_factory=dict, metadata={"key": None})

    def _entries(self) -> dict[str, Any]:
        replay = {} if self.replay is None else self.replay._entries()
        return {**self.entries, **super()._entries(), **replay}

    @classmethod
    def _arguments(cls, record: Mapping[str, Any]) -> dict[str, Any]:
        owned = cls.record_keys() | ReplayOptions.record_keys()
        replay = ReplayOptions.from_record(record) if not ReplayOptions.record_keys().isdisjoint(record) else None
        return {**super()._arguments(record), "replay": replay,
                "entries": {key: value for key, value in record.items() if key not in owned}}


@dataclass(frozen=True)
class StatisticsQuery(Payload):
    """``query.statistics``: the counts a task needs summed before a phase.

    Parameters
    ----------
    stage : int
        The timeline's stage.
    phase : str
        The phase the counts are for.
    """

    stage: int
    phase: str


SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class EvaluateConfig(Payload):
    """``evaluate``: which split to measure the model on.

    Parameters
    ----------
    stage : int, optional
        The timeline's stage whose model it is.
    split : str
        ``test``; ``validation`` (``evaluate_split=validation``: choosing settings without the
        test data); or ``train`` (a withdrawal's forget and retain sets).
    """

    stage: int | None = None
    split: str = "test"

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"evaluate: unknown split {self.split!r} ({', '.join(SPLITS)})")


@dataclass(frozen=True)
class FisherQuery(Payload):
    """``query.fisher`` (EWC).

    Parameters
    ----------
    max_samples : int
        Training samples the Fisher is estimated on, at most.
    """

    max_samples: int


@dataclass(frozen=True)
class ExemplarsQuery(Payload):
    """``query.exemplars`` (the real-buffer replay reference).

    Parameters
    ----------
    count : int
        Training samples to hand over, at most.
    """

    count: int


@dataclass(frozen=True)
class AuditQuery(Payload):
    """``query.audit``: membership inference against the model sent.

    Parameters
    ----------
    reference_models : int
        Reference models for the reference-model attacks (0: the loss attack only).
    reference_steps : int
        Training steps of each reference model (the site's planned steps).
    attack : str
        ``reference``: the reference models share the federation's initialisation and one
        draw of the site's data, and calibrate the loss by their mean; ``lira``: each has its own
        initialisation and data draw, and the likelihood-ratio attack runs beside the others
        (:mod:`sites.membership_inference`).
    """

    reference_models: int
    reference_steps: int
    attack: str = "reference"


#: The membership-inference attacks, in the order a site runs them (:mod:`sites.membership_inference`).
AUDIT_ATTACKS = ("loss", "reference", "lira")
#: The low false-positive rates whose TPR an audit reply gives with an interval: key part -> rate.
LOW_FPRS = {"1pct": 0.01, "0.1pct": 0.001}


@dataclass(frozen=True)
class Interval:
    """A figure with its 95 % confidence interval."""

    value: float
    low: float
    high: float

    def entries(self, key: str) -> dict[str, float]:
        """``key``, ``key-ci-low``, ``key-ci-high``."""
        return {key: self.value, f"{key}-ci-low": self.low, f"{key}-ci-high": self.high}

    @classmethod
    def from_entries(cls, record: Mapping[str, Any], key: str) -> Self:
        return cls(record[key], record[f"{key}-ci-low"], record[f"{key}-ci-high"])


@dataclass(frozen=True)
class RocSummary:
    """One attack's ROC on one set of members and non-members, as an audit reply carries it.

    Parameters
    ----------
    auc : Interval
        The ROC AUC (DeLong's interval).
    tpr : dict
        :data:`LOW_FPRS` key part -> the true-positive rate at that false-positive rate
        (Clopper-Pearson's interval over the members).
    advantage : float
        The largest TPR - FPR.
    roc : list of float
        The TPR at each rate of the audit's FPR grid.
    """

    auc: Interval
    tpr: dict[str, Interval]
    advantage: float
    roc: list[float]

    def entries(self, prefix: str) -> dict[str, Any]:
        """The reply's entries, keyed ``<prefix>-auc``, ``<prefix>-tpr-at-1pct-fpr``, ... ."""
        entries = self.auc.entries(f"{prefix}-auc")
        for name, rate in self.tpr.items():
            entries.update(rate.entries(f"{prefix}-tpr-at-{name}-fpr"))
        return {**entries, f"{prefix}-advantage": self.advantage, f"{prefix}-roc": self.roc}

    @classmethod
    def from_entries(cls, record: Mapping[str, Any], prefix: str) -> Self | None:
        """The summary under ``prefix`` (``None`` if the reply has none)."""
        if f"{prefix}-auc" not in record:
            return None
        return cls(Interval.from_entries(record, f"{prefix}-auc"),
                   {name: Interval.from_entries(record, f"{prefix}-tpr-at-{name}-fpr") for name in LOW_FPRS},
                   record[f"{prefix}-advantage"], list(record[f"{prefix}-roc"]))


@dataclass(frozen=True)
class AttackResult:
    """One attack's ROC summaries: on every member and non-member and, where patients carry
    markers (and each group has at least two of each), on the marked and the unmarked apart."""

    overall: RocSummary
    marked: RocSummary | None = None
    unmarked: RocSummary | None = None

    def entries(self, attack: str) -> dict[str, Any]:
        """The reply's entries: ``<attack>-...``, ``<attack>-marked-...``, ``<attack>-unmarked-...``."""
        entries = self.overall.entries(attack)
        for group, summary in (("marked", self.marked), ("unmarked", self.unmarked)):
            if summary is not None:
                entries.update(summary.entries(f"{attack}-{group}"))
        return entries

    @classmethod
    def from_entries(cls, record: Mapping[str, Any], attack: str) -> Self | None:
        """The attack's summaries (``None`` if it did not run)."""
        overall = RocSummary.from_entries(record, attack)
        if overall is None:
            return None
        return cls(overall, *(RocSummary.from_entries(record, f"{attack}-{group}") for group in ("marked", "unmarked")))


@dataclass(frozen=True)
class AuditReply(Payload):
    """The reply to ``query.audit``: a site's membership-inference ROC summaries
    (:func:`~sites.membership_inference.site_audit`), never a per-sample score.

    Parameters
    ----------
    n_members, n_non_members : int
        The training and test samples scored.
    min_resolvable_fpr : float
        The smallest non-zero false-positive rate the non-members resolve.
    epsilon : float, optional
        The site's DP epsilon (``None``: the site trains without DP).
    attacks : dict
        Attack (:data:`AUDIT_ATTACKS`, those that ran) -> its :class:`AttackResult`.
    n_marked_members, n_marked_non_members : float, optional
        Members and non-members that carry identifying markers (``None``: the site has none).
    """

    record_type = MetricRecord

    n_members: int
    n_non_members: int
    min_resolvable_fpr: float
    epsilon: float | None = None
    attacks: dict[str, AttackResult] = field(default_factory=dict, metadata={"key": None})
    n_marked_members: float | None = None
    n_marked_non_members: float | None = None

    def _entries(self) -> dict[str, Any]:
        # The attacks' entries sit between the counts and the marker counts, in the order they ran.
        entries = super()._entries()
        marker_keys = [key for key in ("n-marked-members", "n-marked-non-members") if key in entries]
        markers = {key: entries.pop(key) for key in marker_keys}
        for attack, result in self.attacks.items():
            entries.update(result.entries(attack))
        return {**entries, **markers}

    @classmethod
    def _arguments(cls, record: Mapping[str, Any]) -> dict[str, Any]:
        attacks = {attack: result for attack in AUDIT_ATTACKS
                   if (result := AttackResult.from_entries(record, attack)) is not None}
        return {**super()._arguments(record), "attacks": attacks}


@dataclass(frozen=True)
class UnlearnConfig(Payload):
    """``train.unlearn``: a site's part of an unlearning round (:mod:`sites.unlearning`).

    Parameters
    ----------
    method : str
        The unlearning method.
    role : str
        ``forget`` (the withdrawing site) or ``retain`` (the others).
    local_steps : int
        Optimizer steps.
    lr : float
        Adam learning rate.
    beta : float
        NPO's inverse temperature.
    """

    method: str
    role: str
    local_steps: int
    lr: float
    beta: float = 1.0


@dataclass(frozen=True)
class GeneratorConfig(Payload):
    """``train.generator``: the replay generator's architecture, which the server and every site
    build alike, and a site's training of it (:mod:`sites.diffusion`).

    Parameters
    ----------
    channels : list of int
        The denoiser's channels per level.
    embed_dim : int
        Width of the prompt tokens.
    heads : int
        Attention heads.
    steps : int
        Adam steps a site takes.
    batch_size : int
        Samples per step.
    lr : float
        Adam learning rate.
    prompt_dropout : float
        Share of samples trained under the null prompt (classifier-free guidance); 0 by
        default, so that a saved record without the entry reads as no guidance training.
    """

    channels: list[int] = field(metadata={"key": "generator-channels"})
    embed_dim: int
    heads: int
    steps: int
    batch_size: int
    lr: float
    prompt_dropout: float = 0.0


@dataclass(frozen=True)
class NodeState(Payload):
    """What a node keeps between messages, and what ``query.resume`` sets it back to.

    Parameters
    ----------
    train_calls : int
        The node's seeded calls so far (they seed local training).
    dp_history : str, optional
        A DP site's accountant history (JSON).
    """

    train_calls: int = 0
    dp_history: str | None = None


@dataclass(frozen=True)
class SiteIdentity(Payload):
    """The reply to ``query`` (and ``query.resume``): which site the node plays.

    Parameters
    ----------
    site_id : str
        The site's id.
    """

    site_id: str


@dataclass(frozen=True)
class DataReport(Payload):
    """The reply to ``query.data``: the site's data loaded.

    Parameters
    ----------
    n_train, n_test : int
        The sizes of its splits.
    noise_multiplier : float, optional
        With DP, the noise it will train with.
    """

    record_type = MetricRecord

    n_train: int
    n_test: int
    noise_multiplier: float | None = None


@dataclass(frozen=True)
class AccountantHistory(Payload):
    """A DP site's accountant history, sent with its training and unlearning replies for the
    server to resume from and to report what a withdrawal spent.

    Parameters
    ----------
    dp_history : str
        The history (noise, sample rate, steps) as JSON.
    """

    dp_history: str


@dataclass(frozen=True)
class MessageKind:
    """One kind of message: its Flower message type and what it carries.

    Parameters
    ----------
    category : str
        Flower's category (``MessageType.TRAIN``, ``EVALUATE`` or ``QUERY``).
    action : str, optional
        The suffix after the category (``None``: the category's default handler).
    config : type, optional
        The :class:`Payload` of the message's config record.
    reply : mapping
        Record name -> :class:`RecordKind` of everything a reply may carry.
    seeded : bool
        The handler takes the node's next seeded call (a resumed run counts them).
    """

    category: str
    action: str | None = None
    config: type[Payload] | None = None
    reply: Mapping[str, str] = field(default_factory=dict, compare=False)
    seeded: bool = False

    @property
    def type(self) -> str:
        """The full message type, e.g. ``query.fisher``."""
        return self.category if self.action is None else f"{self.category}.{self.action}"

    def register(self, app: ClientApp,
                 mods: list[Mod] | None = None) -> Callable[[ClientAppCallable], ClientAppCallable]:
        """The ``app`` decorator that makes a function this kind's handler, inside ``mods``
        (Flower mods for this handler only)."""
        decorator = {MessageType.TRAIN: app.train, MessageType.EVALUATE: app.evaluate,
                     MessageType.QUERY: app.query}[self.category]
        return decorator(mods=mods) if self.action is None else decorator(self.action, mods=mods)

    def message(self, content: RecordDict, node: int) -> Message:
        """A message of this kind with ``content`` to ``node``."""
        return Message(content, dst_node_id=node, message_type=self.type)

    def messages(self, content: RecordDict, nodes: Iterable[int]) -> list[Message]:
        """One message of this kind with ``content`` to each node."""
        return [self.message(content, node) for node in nodes]

    def config_of(self, message: Message) -> Payload:
        """The message's config record (whatever its name) as :attr:`config`."""
        return self.config.from_record(config_record(message.content))


IDENTIFY = MessageKind(MessageType.QUERY, reply={RecordName.SITE: RecordKind.CONFIG})
CHECK_DATA = MessageKind(MessageType.QUERY, "data", reply={RecordName.DATA: RecordKind.METRICS})
STATISTICS = MessageKind(MessageType.QUERY, "statistics", StatisticsQuery,
                         reply={RecordName.STATISTICS: RecordKind.METRICS})
TRAIN = MessageKind(MessageType.TRAIN, None, TrainConfig, seeded=True,
                    reply={RecordName.MODEL: RecordKind.ARRAYS, RecordName.METRICS: RecordKind.METRICS,
                           RecordName.ACCOUNTANT: RecordKind.CONFIG})
UNLEARN = MessageKind(MessageType.TRAIN, "unlearn", UnlearnConfig, seeded=True,
                      reply={RecordName.MODEL: RecordKind.ARRAYS, RecordName.METRICS: RecordKind.METRICS,
                             RecordName.ACCOUNTANT: RecordKind.CONFIG})
TRAIN_GENERATOR = MessageKind(MessageType.TRAIN, "generator", GeneratorConfig, seeded=True,
                              reply={RecordName.GENERATOR: RecordKind.ARRAYS, RecordName.PROMPT: RecordKind.ARRAYS,
                                     RecordName.METRICS: RecordKind.METRICS})
FISHER = MessageKind(MessageType.QUERY, "fisher", FisherQuery, seeded=True,
                     reply={RecordName.FISHER: RecordKind.ARRAYS, RecordName.METRICS: RecordKind.METRICS})
EXEMPLARS = MessageKind(MessageType.QUERY, "exemplars", ExemplarsQuery,
                        reply={RecordName.EXEMPLARS: RecordKind.ARRAYS})
EVALUATE = MessageKind(MessageType.EVALUATE, None, EvaluateConfig, reply={RecordName.METRICS: RecordKind.METRICS})
AUDIT = MessageKind(MessageType.QUERY, "audit", AuditQuery, reply={RecordName.AUDIT: RecordKind.METRICS})
RESUME = MessageKind(MessageType.QUERY, "resume", NodeState, reply={RecordName.SITE: RecordKind.CONFIG})

KINDS = (IDENTIFY, CHECK_DATA, STATISTICS, TRAIN, UNLEARN, TRAIN_GENERATOR, FISHER, EXEMPLARS, EVALUATE, AUDIT,
         RESUME)
#: Message types whose handlers take the node's next seeded call: a resumed run counts the
#: ones it sent to each site to set the count back (``query.resume``).
SEEDED_TYPES = frozenset(kind.type for kind in KINDS if kind.seeded)


def request(config: Payload | None = None, model: ArrayRecord | None = None,
            arrays: Mapping[str, ArrayRecord] | None = None) -> RecordDict:
    """The content of a message the server sends outside a strategy's rounds.

    Parameters
    ----------
    config : Payload, optional
        The message's configuration, under :attr:`RecordName.CONFIG`.
    model : ArrayRecord, optional
        The global model, under :attr:`RecordName.MODEL`.
    arrays : mapping, optional
        Other array records by name (:class:`RecordName`).
    """
    content = RecordDict(dict(arrays or {}))
    if model is not None:
        content[RecordName.MODEL] = model
    if config is not None:
        content[RecordName.CONFIG] = config.to_record()
    return content


def config_record(content: RecordDict) -> ConfigRecord:
    """The one config record of a message, under whatever name its strategy uses (empty if none)."""
    records = list(content.config_records.values())
    return records[0] if records else ConfigRecord()


def model_record(message: Message) -> ArrayRecord:
    """The model: the one ArrayRecord a strategy sends besides :data:`STRATEGY_ARRAYS`, under
    whatever name it uses."""
    records = [record for name, record in message.content.array_records.items() if name not in STRATEGY_ARRAYS]
    if len(records) != 1:
        raise ValueError(f"expected one model ArrayRecord in the {message.metadata.message_type} message, "
                         f"got {len(records)}")
    return records[0]
