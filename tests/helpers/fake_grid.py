"""A federation without Flower's engine: nodes that answer every message at once with canned
replies, for testing the server's pieces (views, stage runner, timeline) without Ray."""

from collections.abc import Callable, Iterable

import torch
from flwr.app import ArrayRecord, Error, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid

from sites.protocol import (
    AUDIT,
    CHECK_DATA,
    EVALUATE,
    IDENTIFY,
    LOW_FPRS,
    RESUME,
    SEEDED_TYPES,
    STATISTICS,
    TRAIN,
    AttackResult,
    AuditReply,
    DataReport,
    Interval,
    MetricKey,
    NodeState,
    RecordName,
    RocSummary,
    SiteIdentity,
    model_record,
)
from sites.tasks import Phase

#: What a node answers a message with: the reply's content, or an error.
Answer = Callable[[Message], RecordDict | Error | None]


class CannedGrid(Grid):
    """Nodes ``nodes`` that reply to each message with ``answer(message)`` (``None``: no reply),
    all at once, in reverse order of sending; :attr:`sent` keeps every message pushed.

    Parameters
    ----------
    nodes : iterable of int
        The connected node ids.
    answer : callable
        Message -> the reply's content, an :class:`~flwr.app.Error`, or ``None`` to stay silent.
    """

    def __init__(self, nodes: Iterable[int], answer: Answer) -> None:
        self.nodes, self.answer = list(nodes), answer
        self.sent: list[Message] = []
        self._replies: list[Message] = []

    def set_run(self, run) -> None:
        pass

    @property
    def run(self):
        return None

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None) -> Message:
        return Message(content, dst_node_id=dst_node_id, message_type=message_type)

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = f"m{len(self.sent)}"
            self.sent.append(message)
            ids.append(message.metadata.message_id)
            content = self.answer(message)
            if content is not None:
                self._replies.insert(0, Message(content, reply_to=message))
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        wanted = set(message_ids)
        ready = [r for r in self._replies if r.metadata.reply_to_message_id in wanted]
        self._replies = [r for r in self._replies if r not in ready]
        return ready

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        return self.pull_messages(self.push_messages(messages))

    def sent_of(self, message_type: str) -> list[Message]:
        """The messages of ``message_type`` pushed so far, in order."""
        return [m for m in self.sent if m.metadata.message_type == message_type]


def _mean(message: Message) -> float:
    """The mean of every value of the model a message carries."""
    model = model_record(message).to_torch_state_dict()
    return torch.cat([value.flatten().float() for value in model.values()]).mean().item()


class FakeSites:
    """The sites behind a :class:`CannedGrid` (use :meth:`answer`), answering as the ClientApp
    would, from a rule simple enough to predict by hand.

    Each site counts its seeded calls (``query.resume`` sets the count back, as a restarted node
    is set back). Training adds ``call + 1`` to every model array, ``call`` being the site's
    count before the call, so that a run that lost count ends elsewhere; it reports
    ``examples[site]`` examples. Evaluation reports ``metric`` as the model's mean plus the
    site's index (in site id order) / 100, plus 0.5 on the training split; ``query.audit`` a
    ``loss-auc`` of the model's mean / 100; ``query.statistics`` the site's ``counts``.

    Parameters
    ----------
    site_of_node : dict of int to str
        Which site each node plays.
    metric : str
        The metric evaluation reports.
    counts : dict of str to dict, optional
        Site -> what it answers ``query.statistics`` with (default ``{"n": examples}``).
    examples : dict of str to int, optional
        Site -> its training examples (default 1 each).
    """

    def __init__(self, site_of_node: dict[int, str], metric: str = "score",
                 counts: dict[str, dict[str, float]] | None = None, examples: dict[str, int] | None = None) -> None:
        self.site_of_node, self.metric = dict(site_of_node), metric
        self.examples = {site: 1 for site in self.site_of_node.values()} | dict(examples or {})
        self.counts = counts or {site: {"n": float(n)} for site, n in self.examples.items()}
        self.calls = {site: 0 for site in self.site_of_node.values()}

    def answer(self, message: Message) -> RecordDict:
        site = self.site_of_node[message.metadata.dst_node_id]
        kind = message.metadata.message_type
        content = message.content
        if kind in SEEDED_TYPES:
            call = self.calls[site]
            self.calls[site] += 1
        if kind == TRAIN.type:
            model = model_record(message).to_torch_state_dict()
            trained = ArrayRecord({key: value + (call + 1) for key, value in model.items()})
            return RecordDict({RecordName.MODEL: trained,
                               RecordName.METRICS: MetricRecord({MetricKey.NUM_EXAMPLES: self.examples[site],
                                                                 "train_loss": float(call)})})
        if kind == EVALUATE.type:
            value = _mean(message) + sorted(self.calls).index(site) / 100
            if EVALUATE.config_of(message).split == "train":
                value += 0.5
            return RecordDict({RecordName.METRICS: MetricRecord({self.metric: value, MetricKey.NUM_EXAMPLES: 1})})
        if kind == AUDIT.type:
            return RecordDict({RecordName.AUDIT: _audit_reply(_mean(message) / 100).to_record()})
        if kind == STATISTICS.type:
            return RecordDict({RecordName.STATISTICS: MetricRecord(self.counts[site])})
        if kind == CHECK_DATA.type:
            return RecordDict({RecordName.DATA: DataReport(self.examples[site], 1).to_record()})
        if kind == RESUME.type:
            self.calls[site] = NodeState.from_record(content[RecordName.CONFIG]).train_calls
        if kind in (IDENTIFY.type, RESUME.type):
            return RecordDict({RecordName.SITE: SiteIdentity(site).to_record()})
        raise AssertionError(f"the fake sites do not answer {kind}")

    def grid(self) -> CannedGrid:
        """A grid of these sites' nodes."""
        return CannedGrid(self.site_of_node, self.answer)


class TwoPhaseTask:
    """Just what the server asks of a task: a one-array model, and two phases, the second
    configured from the sites' summed counts (``{"total": n}``)."""

    phases = (Phase("count"), Phase("weigh", statistics=True))
    primary_metric = "score"
    round_steps = 2

    def build_model(self) -> torch.nn.Module:
        return torch.nn.Linear(2, 1, bias=False)

    def phase_config(self, phase: str, totals: dict[str, float]) -> dict[str, float]:
        return {"total": totals["n"]}

    def pool_metrics(self, site_metrics, statistics) -> dict[str, float]:
        return {}


def _audit_reply(auc: float) -> AuditReply:
    """An audit reply whose loss attack reads ``auc`` (an interval of no width, no TPR)."""
    point = Interval(auc, auc, auc)
    summary = RocSummary(point, {name: Interval(0.0, 0.0, 0.0) for name in LOW_FPRS}, 0.0, [])
    return AuditReply(n_members=1, n_non_members=1, min_resolvable_fpr=1.0, attacks={"loss": AttackResult(summary)})
