"""Every site's model update of every training round, kept in the run directory so that
FedEraser can calibrate a withdrawal from them (docs/design.md#unlearning)."""

from collections.abc import Iterator
from pathlib import Path

import torch
from flwr.app import Message

from sites.protocol import TRAIN, MetricKey

#: A stored round: the training config sent, and site id -> (update, number of examples).
StoredRound = tuple[dict, dict[str, tuple[dict[str, torch.Tensor], int]]]


def _state(message: Message) -> dict[str, torch.Tensor]:
    (arrays,) = message.content.array_records.values()
    return arrays.to_torch_state_dict()


def reply_update(reply: Message, sent: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """A training reply's update against the state it was sent (floating-point arrays only:
    integer buffers are not updates), and the number of examples the site trained on."""
    returned = _state(reply)
    (metrics,) = reply.content.metric_records.values()
    return {k: returned[k] - v for k, v in sent.items() if v.is_floating_point()}, int(metrics[MetricKey.NUM_EXAMPLES])


class UpdateStore:
    """Records training exchanges (use :meth:`record` as a :class:`~server.site_grid.SiteGrid`
    recorder) as ``<directory>/round_<n>.pt``.

    An update is :func:`reply_update`: the site's returned model minus the model it was sent.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._count = 0

    def record(self, messages: list[Message], replies: list[tuple[str, Message]]) -> None:
        if messages[0].metadata.message_type != TRAIN.type:
            return
        sent = {message.metadata.message_id: message for message in messages}
        updates = {site: reply_update(reply, _state(sent[reply.metadata.reply_to_message_id]))
                   for site, reply in replies}
        (config,) = messages[0].content.config_records.values()
        self._count += 1
        torch.save({"config": dict(config), "updates": updates}, self.directory / f"round_{self._count:04d}.pt")

    def rounds(self) -> Iterator[StoredRound]:
        """The stored rounds in the order they ran."""
        for path in sorted(self.directory.glob("round_*.pt")):
            stored = torch.load(path)
            yield stored["config"], stored["updates"]
