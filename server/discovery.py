"""Map Flower's random node ids to sites with a query round, then check every site's data."""

import time
from collections.abc import Sequence

from flwr.app import RecordDict
from flwr.serverapp import Grid

from sites.errors import MedsitesError
from sites.protocol import CHECK_DATA, IDENTIFY, RecordName, SiteIdentity

from .site_grid import ReplyListener, SiteGrid


def discover_sites(grid: Grid, site_ids: Sequence[str], timeout: float = 300.0,
                   listener: ReplyListener | None = None) -> dict[int, str]:
    """Wait (up to ``timeout``) for as many nodes as sites, ask every connected node which site it
    plays, and return node id -> site id; ``listener`` sees the replies once they are mapped.
    Sites no node plays, and sites two nodes claim, stop the run with their names."""
    deadline = time.monotonic() + timeout
    while len(nodes := list(grid.get_node_ids())) < len(site_ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    messages = IDENTIFY.messages(RecordDict(), nodes)
    site_of_node = {}
    replies = list(grid.send_and_receive(messages, timeout=timeout))
    for reply in replies:
        if reply.has_error():
            raise MedsitesError(f"node {reply.metadata.src_node_id} could not say which site it is: "
                                f"{reply.error.reason}")
        site_of_node[reply.metadata.src_node_id] = SiteIdentity.from_record(reply.content[RecordName.SITE]).site_id
    claimed = sorted(site_of_node.values())
    doubled = sorted({site for site in claimed if claimed.count(site) > 1})
    if doubled:
        raise MedsitesError(f"more than one node plays site(s) {doubled}: start one node per site")
    missing = sorted(set(site_ids) - set(claimed))
    if missing:
        raise MedsitesError(f"no node plays site(s) {missing} within {timeout} s (the {len(nodes)} connected "
                            f"node(s) play {claimed})")
    if listener is not None:
        listener(IDENTIFY.type, [(site_of_node[r.metadata.src_node_id], r) for r in replies])
    return site_of_node


def check_site_data(grid: Grid, site_of_node: dict[int, str], site_ids: Sequence[str],
                    listener: ReplyListener | None = None, timeout: float = 3600.0) -> None:
    """Have every site load its data now; a site that cannot stops the run before training."""
    view = SiteGrid(grid, site_of_node, site_ids, listener)
    view.send_and_receive(CHECK_DATA.messages(RecordDict(), view.get_node_ids()), timeout=timeout)
