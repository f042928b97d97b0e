"""What may be aggregated: the check of a site's training reply against the message it answers.

A training reply (a message kind of Flower's ``train`` category: ``train``, ``train.unlearn``,
``train.generator``) sends back, trained, the arrays it was sent. Before any strategy or
server code sees it, it must carry only the records its kind declares
(:attr:`~sites.protocol.MessageKind.reply`), each of the declared kind; every array record
must hold the arrays sent under its name (the model under whatever name the strategy gave it),
each with the shape sent, a dtype of the kind sent (floating point for floating point: Flower's
QFedAvg sends float64 arrays after its first round, NumPy promoting its division by a float64,
and a site's torch model answers in float32) and finite values; every metric must be finite. A site
whose training diverged (NaN) or whose network differs (another shape) fails it, and is left
out of the round as if it had gone down (:class:`~server.site_grid.SiteGrid`). A valid reply
may still be a harmful one (a poisoned update, ``faults.bad_reply=scale``): that is the robust
strategies' part.
"""

import math
from collections.abc import Iterator

import numpy as np
from flwr.app import ArrayRecord, Message, MessageType

from sites.protocol import KINDS, MessageKind, RecordKind, model_record

#: Message type -> kind, for the kinds whose replies are checked.
CHECKED = {kind.type: kind for kind in KINDS if kind.category == MessageType.TRAIN}


def reply_problem(sent: Message, reply: Message) -> str | None:
    """The first thing wrong with ``reply`` (which must not be an error reply) to ``sent``, or
    ``None`` if it may be aggregated or is not a training reply."""
    kind = CHECKED.get(sent.metadata.message_type)
    return None if kind is None else next(_problems(kind, sent, reply), None)


def _problems(kind: MessageKind, sent: Message, reply: Message) -> Iterator[str]:
    content = reply.content
    for record_kind, records in ((RecordKind.ARRAYS, content.array_records),
                                 (RecordKind.METRICS, content.metric_records),
                                 (RecordKind.CONFIG, content.config_records)):
        for name in records:
            if kind.reply.get(name) != record_kind:
                yield f"undeclared {record_kind} record {name!r} in a {kind.type} reply"
    for name, arrays in content.array_records.items():
        yield from _array_problems(arrays, _sent_arrays(sent, name), name)
    for metrics in content.metric_records.values():
        for key, value in metrics.items():
            if isinstance(value, list) and not all(map(math.isfinite, value)):
                yield f"metric {key} has non-finite values"
            elif not isinstance(value, list) and not math.isfinite(value):
                yield f"metric {key} is {value}"


def _sent_arrays(sent: Message, name: str) -> ArrayRecord | None:
    """The arrays sent that the reply's record ``name`` sends back: the record of that name, else
    the model (Flower's strategies name it as they like; a site answers under ``arrays``)."""
    records = sent.content.array_records
    if name in records:
        return records[name]
    try:
        return model_record(sent)
    except ValueError:
        return None


def _array_problems(arrays: ArrayRecord, sent: ArrayRecord | None, name: str) -> Iterator[str]:
    if sent is None:
        yield f"record {name!r} sends back arrays that were not sent"
        return
    missing = [key for key in sent if key not in arrays]
    if missing:
        yield f"array {missing[0]!r} is missing" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
    for key, array in arrays.items():
        expected = sent.get(key)
        if expected is None:
            yield f"unexpected array {key!r}"
        elif tuple(array.shape) != tuple(expected.shape):
            yield f"array {key!r} has shape {tuple(array.shape)} instead of {tuple(expected.shape)}"
        elif np.dtype(array.dtype).kind != np.dtype(expected.dtype).kind:
            yield f"array {key!r} has dtype {array.dtype} instead of one like {expected.dtype}"
        else:
            values = array.numpy()
            if np.issubdtype(values.dtype, np.inexact) and not np.isfinite(values).all():
                yield f"non-finite values in {key!r}"
