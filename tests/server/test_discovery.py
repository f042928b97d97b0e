"""Discovery: which connected node plays which site, and which node may (the site-node registry)."""

import pytest
from flwr.app import ConfigRecord, Message, RecordDict

from server.discovery import DeploymentConfig, discover_sites
from server.server_app import Timeline
from simulations.flower_app import compose_config
from simulations.run import prepare
from sites.config import parse
from sites.errors import ConfigError, MedsitesError


class ClaimingGrid:
    """Connected nodes, each answering the discovery query with the site it claims."""

    def __init__(self, claims: dict[int, str]) -> None:
        self.claims = claims

    def get_node_ids(self) -> list[int]:
        return list(self.claims)

    def send_and_receive(self, messages, *, timeout=None):
        return [Message(RecordDict({"site": ConfigRecord({"site-id": self.claims[m.metadata.dst_node_id]})}),
                        reply_to=m) for m in messages]


def test_discovery_names_the_sites_no_supernode_plays():
    with pytest.raises(MedsitesError, match=r"no node plays site\(s\) \['B'\].*play \['A'\]"):
        discover_sites(ClaimingGrid({11: "A"}), ["A", "B"], timeout=0.2)


def test_discovery_refuses_two_supernodes_playing_one_site():
    with pytest.raises(MedsitesError, match=r"more than one node plays site\(s\) \['A'\]"):
        discover_sites(ClaimingGrid({11: "A", 12: "A"}), ["A", "B"], timeout=0.2)


@pytest.mark.parametrize("site_nodes", [None, {"A": 11, "B": 12}])
def test_each_node_plays_the_site_it_claims_where_the_registry_agrees(site_nodes):
    assert discover_sites(ClaimingGrid({12: "B", 11: "A"}), ["A", "B"], timeout=0.2, site_nodes=site_nodes) == \
        {11: "A", 12: "B"}


@pytest.mark.parametrize("claims, message", [
    ({11: "B", 12: "A"}, r"^node 11 claims site 'B', which deployment.site_nodes binds to node 12: "),
    # an authenticated node of the federation that is not the site's, next to the site's own
    ({11: "A", 12: "B", 13: "A"}, r"^node 13 claims site 'A', which deployment.site_nodes binds to node 11: "),
])
def test_discovery_refuses_a_node_claiming_a_site_bound_to_another_node(claims, message):
    with pytest.raises(MedsitesError, match=message) as raised:
        discover_sites(ClaimingGrid(claims), ["A", "B"], timeout=0.2, site_nodes={"A": 11, "B": 12})
    assert "\n" not in str(raised.value)


def test_a_run_prepared_with_a_registry_stops_at_a_node_claiming_another_nodes_site(tmp_path):
    """As the deployed ServerApp prepares its run: the registry of its overrides reaches discovery."""
    plan = prepare(compose_config("size=smoke scenario=two_sites deployment.site_nodes={A:12,B:11}"), tmp_path).plan
    with pytest.raises(MedsitesError, match=r"^node 11 claims site 'A', which deployment.site_nodes binds to node 12"):
        Timeline(plan).run(ClaimingGrid({11: "A", 12: "B"}))


@pytest.mark.parametrize("site_nodes, key, words", [
    ({"A": 11, "B": 12, "Z": 13}, "deployment.site_nodes.Z", "the scenario has no site 'Z' (sites: A, B)"),
    ({"A": 11}, "deployment.site_nodes", "binds no node to site(s) ['B']"),
    ({"A": 11, "B": 11}, "deployment.site_nodes", "node(s) [11] are bound to more than one site"),
])
def test_a_registry_that_does_not_bind_each_site_to_its_own_node_is_refused(site_nodes, key, words):
    with pytest.raises(ConfigError) as raised:
        parse(DeploymentConfig, {"site_nodes": site_nodes}, "deployment").check_sites(["A", "B"])
    assert raised.value.key == key and words in str(raised.value)


def test_a_node_id_is_a_non_negative_integer():
    with pytest.raises(ConfigError) as raised:
        parse(DeploymentConfig, {"site_nodes": {"A": "eleven"}}, "deployment")
    assert raised.value.key == "deployment.site_nodes.A"
