"""The messages the server sends outside a strategy's rounds."""

from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid


def to_every_node(view: Grid, message_type: str, config: dict, **arrays: ArrayRecord) -> list[Message]:
    """One message per node the view shows, with the same config and array records (the
    global model goes under ``arrays``)."""
    content = RecordDict({**arrays, "config": ConfigRecord(config)})
    return [Message(content, dst_node_id=node, message_type=message_type) for node in view.get_node_ids()]
