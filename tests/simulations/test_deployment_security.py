"""Deployment security on loopback (docs/deployment.md, "Security"), on the ``deployment``
fixture (tests/flower_federation.py): a SuperLink with TLS and SuperNode authentication admits
the SuperNodes whose keys were registered, and they run the smoke scenario through ``flwr run``
under the site-node registry (which refuses a node claiming another node's site:
tests/server/test_discovery.py); a SuperNode with an unregistered key, and one that does not
trust the CA, are refused."""

import pytest
from omegaconf import OmegaConf

pytestmark = pytest.mark.e2e


def test_the_registered_supernodes_run_the_scenario_over_tls_as_the_nodes_of_their_sites(deployment):
    assert (deployment.root / "deployed" / "report.md").is_file()
    config = OmegaConf.load(deployment.root / "deployed" / "config.yaml")
    assert config.deployment.site_nodes == {"A": deployment.node_ids["A"], "B": deployment.node_ids["B"]}
    for site in "AB":
        assert f"SuperNode ID: {deployment.node_ids[site]}\n" in deployment.log(f"supernode-{site}")


def test_a_supernode_with_an_unregistered_key_is_refused(deployment):
    assert deployment.refused["stranger"] not in (0, None)
    assert "Failed to activate SuperNode" in deployment.log("supernode-stranger")


def test_a_supernode_that_does_not_trust_the_ca_cannot_connect(deployment):
    assert deployment.refused["no-ca"] not in (0, None)
    assert "CERTIFICATE_VERIFY_FAILED" in deployment.log("supernode-no-ca")
