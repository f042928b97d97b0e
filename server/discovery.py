"""Map Flower's random node ids to sites with a query round, then check every site's data.

A node says which site it plays; in a federation of real machines that claim is bound to the
node's authenticated identity by the ``deployment.site_nodes`` registry: Flower gives a
SuperNode its node id when its public key is registered at the SuperLink
(``flwr supernode register``) and authenticates every request of the node with that key, so a
node id is a hospital's key, and a site may be played only by the node its registry names.
"""

import time
from collections.abc import Mapping, Sequence

from flwr.app import RecordDict
from flwr.serverapp import Grid
from pydantic import NonNegativeInt

from sites.config import ConfigModel
from sites.errors import ConfigError, MedsitesError
from sites.protocol import CHECK_DATA, IDENTIFY, RecordName, SiteIdentity

from .site_grid import ReplyListener, SiteGrid


class DeploymentConfig(ConfigModel):
    """The ``deployment`` config node: what a federation of real machines checks of its nodes.

    Parameters
    ----------
    site_nodes : dict of str to int, or None
        Site id -> the node id the SuperLink gave the hospital's key at registration, for every
        site of the scenario; a node claiming a site bound to another node stops the run.
        ``None``: a node plays whichever site it claims (the simulation, whose engine numbers
        the nodes itself).
    """

    site_nodes: dict[str, NonNegativeInt] | None = None

    def check_sites(self, site_ids: Sequence[str]) -> None:
        """Refuse a registry that does not bind exactly the scenario's sites, each to its own node."""
        if self.site_nodes is None:
            return
        for site in self.site_nodes:
            if site not in site_ids:
                raise ConfigError(f"deployment.site_nodes.{site}", f"the scenario has no site {site!r} "
                                  f"(sites: {', '.join(site_ids)})")
        unbound = [site for site in site_ids if site not in self.site_nodes]
        if unbound:
            raise ConfigError("deployment.site_nodes", f"binds no node to site(s) {unbound}: any node could "
                              "play them; give every site its registered node id")
        nodes = list(self.site_nodes.values())
        shared = sorted({node for node in nodes if nodes.count(node) > 1})
        if shared:
            raise ConfigError("deployment.site_nodes", f"node(s) {shared} are bound to more than one site; "
                              "each hospital registers its own key")


def discover_sites(grid: Grid, site_ids: Sequence[str], timeout: float = 300.0,
                   listener: ReplyListener | None = None,
                   site_nodes: Mapping[str, int] | None = None) -> dict[int, str]:
    """Wait (up to ``timeout``) for as many nodes as sites, ask every connected node which site it
    plays, and return node id -> site id; ``listener`` sees the replies once they are mapped.
    A node claiming a site that ``site_nodes`` (site id -> node id, see
    :class:`DeploymentConfig`) binds to another node, sites no node plays, and sites two nodes
    claim, stop the run with their names."""
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
    if site_nodes is not None:
        for node, site in site_of_node.items():
            if site_nodes.get(site) != node:
                raise MedsitesError(f"node {node} claims site {site!r}, which deployment.site_nodes binds to "
                                    f"node {site_nodes.get(site, '(none)')}: its node config names another "
                                    "hospital's site, or the registry does")
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
