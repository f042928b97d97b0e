"""``metrics.jsonl``: every reply a site sends (its metrics and a description of all its
content), as one JSON event per line."""

import json
import os
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from flwr.app import Message, MessageType

from sites.protocol import RecordKind


class Event(StrEnum):
    """The ``event`` of a ``metrics.jsonl`` line.

    A site's reply is logged under the exchange it belongs to, else (the strategy's rounds, the
    data check) under its message type's action, or its category where it has none
    (:meth:`of_message`); the server's own notes have their own.
    """

    #: Which site a node plays (``query``).
    SITE = "site"
    #: A site's split sizes (``query.data``).
    DATA = "data"
    #: Counts summed before a phase (``query.statistics``).
    STATISTICS = "statistics"
    #: A training round's replies, and an evaluation round's, of the strategy.
    TRAIN = "train"
    EVALUATE = "evaluate"
    #: A site's Fisher information (EWC, ``query.fisher``).
    FISHER = "fisher"
    #: Each site's evaluation after a stage: R[t, j] is its primary metric.
    MATRIX = "matrix"
    #: The replay source learning a stage's sites.
    REPLAY = "replay"
    #: The exchanges of a withdrawal (unlearning, retraining, evaluations, the forget-set attack).
    WITHDRAWAL = "withdrawal"
    #: The privacy audit's replies.
    AUDIT = "audit"
    #: The sites set back to a checkpoint's state (``query.resume``).
    RESUME = "resume"
    #: The server's notes: the strategy's aggregated training metrics of a round, a site that
    #: failed, a stage tried again, a run resumed.
    AGGREGATE = "aggregate"
    FAILURE = "failure"
    RETRY = "retry"
    RESUMED = "resumed"

    @classmethod
    def of_message(cls, message_type: str) -> "Event | str":
        """The event of a reply of ``message_type`` outside a named exchange: its action if it has
        one (``statistics`` for ``query.statistics``), else its category (``train``); a user
        strategy's own message types log under their own action."""
        name = message_type.split(".")[-1]
        return cls(name) if name in cls._value2member_map_ else name


def describe_content(message: Message) -> dict[str, dict]:
    """What a reply carried, record by record: array names and shapes, metric names (and the
    length of list-valued ones), config entries. Lets anyone check what left each site."""
    content = message.content
    described: dict[str, dict] = {}
    for name, arrays in content.array_records.items():
        described[name] = {"kind": RecordKind.ARRAYS,
                           "shapes": {key: list(array.shape) for key, array in arrays.items()}}
    for name, metrics in content.metric_records.items():
        described[name] = {"kind": RecordKind.METRICS, "lengths": {k: len(v) if isinstance(v, list) else None
                                                          for k, v in metrics.items()}}
    for name, config in content.config_records.items():
        described[name] = {"kind": RecordKind.CONFIG, "values": dict(config)}
    return described


class RunLog:
    """Append-only event log of a run, fed by :class:`~server.site_grid.SiteGrid` listeners.

    Parameters
    ----------
    path : Path
        The ``metrics.jsonl`` file to write.
    on_round : callable, optional
        Called with ``(stage, round)`` after each training exchange, for progress display.
    resume_from : dict, optional
        A :meth:`mark` of this file: a resumed run cuts the file back to it (dropping what the
        killed run logged after its last checkpoint) and continues from there.
    on_event : callable, optional
        Called with each event (the dict written as a line) once it is on disk; experiment
        tracking listens here.
    """

    def __init__(self, path: Path, on_round: Callable[[int, int], None] | None = None,
                 resume_from: dict[str, int] | None = None, on_event: Callable[[dict], None] | None = None) -> None:
        if resume_from is not None:
            os.truncate(path, resume_from["offset"])
        self._file = path.open("a", encoding="utf-8")
        self._on_round = on_round
        self._on_event = on_event
        self.stage = 0
        self.round = 0 if resume_from is None else resume_from["round"]

    def mark(self) -> dict[str, int]:
        """Where the log stands (everything written so far is on disk)."""
        self._file.flush()
        return {"offset": self._file.tell(), "round": self.round}

    def write(self, event: Event | str, **fields) -> None:
        record = {"event": event, "stage": self.stage, "round": self.round, **fields}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._on_event is not None:
            self._on_event(record)

    def listener(self, event: Event | None = None) -> Callable[[str, list[tuple[str, Message]]], None]:
        """A reply listener that logs each reply's metrics as ``event`` (default: the message
        type's, :meth:`Event.of_message`); a training exchange also advances the round counter."""

        def log_replies(message_type: str, replies: list[tuple[str, Message]]) -> None:
            category = message_type.split(".")[0]
            if category == MessageType.TRAIN and event is None:
                self.round += 1
            for site, reply in replies:
                metrics = {k: v for record in reply.content.metric_records.values() for k, v in record.items()}
                self.write(event or Event.of_message(message_type), site=site, metrics=metrics,
                           content=describe_content(reply))
            if category == MessageType.TRAIN and event is None and self._on_round is not None:
                self._on_round(self.stage, self.round)

        return log_replies

    def close(self) -> None:
        self._file.close()
