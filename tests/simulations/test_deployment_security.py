"""Deployment security on loopback (docs/deployment.md, "Security"), on the federation of
tests/helpers/flower_federation.py: a SuperLink with TLS and SuperNode authentication admits the
SuperNodes whose keys were registered, as the node ids registration gave them, and they run the
smoke scenario through ``flwr run`` under the site-node registry (which refuses a node claiming
another node's site: tests/server/test_discovery.py); a SuperNode with an unregistered key, and
one that does not trust the CA, are refused."""

import subprocess

import pytest
from omegaconf import OmegaConf

pytestmark = pytest.mark.e2e


def ended(process: subprocess.Popen) -> int | None:
    """How ``process`` ended; ``None`` if it still runs two minutes from now."""
    try:
        return process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        return None


def test_the_registered_supernodes_connect_over_tls_as_their_registered_nodes(secured):
    for site in "AB":
        assert secured.federation.prints(f"supernode-{site}", f"SuperNode ID: {secured.node_ids[site]}\n"), \
            secured.federation.log(f"supernode-{site}")[-3000:]


def test_a_supernode_with_an_unregistered_key_is_refused(secured):
    assert ended(secured.refused["stranger"]) not in (0, None)
    assert "Failed to activate SuperNode" in secured.federation.log("supernode-stranger")


def test_a_supernode_that_does_not_trust_the_ca_cannot_connect(secured):
    assert ended(secured.refused["no-ca"]) not in (0, None)
    assert "CERTIFICATE_VERIFY_FAILED" in secured.federation.log("supernode-no-ca")


@pytest.mark.slow
def test_the_registered_supernodes_run_the_scenario_over_tls_under_the_registry(secured, deployment):
    assert (deployment / "deployed" / "report.md").is_file()
    config = OmegaConf.load(deployment / "deployed" / "config.yaml")
    assert config.deployment.site_nodes == secured.node_ids
