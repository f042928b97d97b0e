"""A view of the federation's Grid that shows a strategy only the sites present now.

Flower strategies sample from ``grid.get_node_ids()``; handing them this view instead of the
real grid is all it takes for an unmodified strategy to train only the sites of the current
stage. The view also puts replies in site order (so aggregation sums in the same order every
run), turns a site's error reply into a :class:`~sites.errors.SiteError`, checks every training
reply against the message it answers (:mod:`server.reply_check`: an invalid reply is an error
too), and reports every reply to the run's recorder. With a failure listener, a site that went
down (its ClientApp crashed, as ``faults.crash_prob`` simulates, or its node is gone:
:data:`~sites.faults.DOWN_CODES`) or whose reply is invalid is reported to it and left out of
the replies instead: the strategy goes on with the valid replies it got.
"""

import time
from collections.abc import Callable, Iterable, Mapping

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from sites.errors import SiteError
from sites.faults import DOWN_CODES

from .reply_check import reply_problem

_PULL_INTERVAL = 0.01  # seconds

#: Called with the message type and the ``(site id, reply)`` pairs of one exchange.
ReplyListener = Callable[[str, list[tuple[str, Message]]], None]
#: Called with the messages sent and the ``(site id, reply)`` pairs of one exchange.
ExchangeRecorder = Callable[[list[Message], list[tuple[str, Message]]], None]
#: Called with the message type and the ``(site id, reason)`` pairs of the sites that went down
#: or replied invalidly.
FailureListener = Callable[[str, list[tuple[str, str]]], None]


class SiteGrid(Grid):
    """Restrict a grid to some sites.

    Parameters
    ----------
    grid : Grid
        The federation's grid (all nodes).
    site_of_node : mapping of int to str
        Node id to site id, for every node of the federation.
    present : iterable of str
        Ids of the sites the strategy may see and message.
    listener : callable, optional
        Receives every exchange's replies, see :data:`ReplyListener`.
    recorder : callable, optional
        Receives every exchange's messages and replies, see :data:`ExchangeRecorder`.
    on_send : callable, optional
        Called with every batch of messages before they are pushed.
    on_failure : callable, optional
        Receives the sites that went down or replied invalidly during training, see
        :data:`FailureListener`; without it, either is an error like any other.
    """

    def __init__(
        self,
        grid: Grid,
        site_of_node: Mapping[int, str],
        present: Iterable[str],
        listener: ReplyListener | None = None,
        recorder: ExchangeRecorder | None = None,
        on_send: Callable[[list[Message]], None] | None = None,
        on_failure: FailureListener | None = None,
    ) -> None:
        self._grid = grid
        self._site_of_node = dict(site_of_node)
        order = {site: i for i, site in enumerate(present)}
        self._order = order
        self._present_nodes = sorted(
            (node for node, site in self._site_of_node.items() if site in order),
            key=lambda node: order[self._site_of_node[node]],
        )
        self._listener = listener
        self._recorder = recorder
        self._on_send = on_send
        self._on_failure = on_failure

    def set_run(self, run: Run) -> None:
        self._grid.set_run(run)

    @property
    def run(self) -> Run:
        return self._grid.run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return self._grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> list[int]:
        """Node ids of the present sites, in site order."""
        return list(self._present_nodes)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        self._check_present(messages)
        if self._on_send is not None:
            self._on_send(messages)
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._grid.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        """Send, wait, and return the replies in site order.

        Raises
        ------
        SiteError
            If a message is addressed to an absent site, or a site replies with an error or
            invalidly (unless it is tolerated, see ``on_failure``).
        """
        messages = list(messages)
        if not messages:
            return []
        self._check_present(messages)
        replies = sorted(self._exchange(messages, timeout),
                         key=lambda reply: self._order[self.site_of_node(reply.metadata.src_node_id)])
        message_type = messages[0].metadata.message_type
        left_out = self._left_out({m.metadata.dst_node_id: m for m in messages}, replies)
        answered = {reply.metadata.src_node_id for reply in replies}
        silent = [self.site_of_node(m.metadata.dst_node_id) for m in messages if m.metadata.dst_node_id not in answered]
        if silent:
            raise SiteError(", ".join(silent), f"no reply within {timeout} s")
        if left_out:
            self._on_failure(message_type, [(self.site_of_node(node), reason) for node, reason in left_out.items()])
            replies = [reply for reply in replies if reply.metadata.src_node_id not in left_out]
        pairs = [(self.site_of_node(r.metadata.src_node_id), r) for r in replies]
        if self._listener is not None:
            self._listener(message_type, pairs)
        if self._recorder is not None:
            self._recorder(messages, pairs)
        return replies

    def _left_out(self, sent: Mapping[int, Message], replies: list[Message]) -> dict[int, str]:
        """Node -> why its reply is left out: its site went down, or its reply is invalid.

        Raises
        ------
        SiteError
            For any other error reply, and for these without a failure listener.
        """
        left_out = {}
        for reply in replies:
            node = reply.metadata.src_node_id
            if reply.has_error():
                reason, tolerable = str(reply.error.reason), reply.error.code in DOWN_CODES
            elif (problem := reply_problem(sent[node], reply)) is not None:
                reason, tolerable = f"invalid reply: {problem}", True
            else:
                continue
            if not tolerable or self._on_failure is None:
                raise SiteError(self.site_of_node(node), reason)
            left_out[node] = reason
        return left_out

    def _exchange(self, messages: list[Message], timeout: float | None) -> list[Message]:
        # Flower's in-memory grid polls every 100 ms; a round has several exchanges and a
        # scenario hundreds, so poll more often (a pull is an in-memory lookup).
        pending = set(self.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while pending and (deadline is None or time.monotonic() < deadline):
            pulled = list(self._grid.pull_messages(pending))
            replies.extend(pulled)
            pending -= {reply.metadata.reply_to_message_id for reply in pulled}
            if pending:
                time.sleep(_PULL_INTERVAL)
        return replies

    def site_of_node(self, node: int) -> str:
        """The site id of a node id."""
        return self._site_of_node.get(node, f"node {node}")

    def _check_present(self, messages: list[Message]) -> None:
        for message in messages:
            if message.metadata.dst_node_id not in self._present_nodes:
                raise SiteError(self.site_of_node(message.metadata.dst_node_id),
                                "a strategy addressed a site that is not present in this stage")
