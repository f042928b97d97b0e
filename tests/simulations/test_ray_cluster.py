"""Runs attached to a running Ray cluster (``backend.address``): the session's head node on
loopback (the ``ray_head`` fixture), which every e2e run but ``fedavg_run`` attaches to. That an
attached run gives the private run's matrix is checked by the saved-config rerun
(``tests/e2e/test_e2e.py``)."""

import time

import pytest
from conftest import free_port

from simulations.engine import ray_backend_config
from sites.errors import ConfigError


@pytest.mark.e2e
@pytest.mark.filterwarnings("ignore::FutureWarning")  # Ray's tip on accelerator variables, on attaching
def test_client_cpus_are_checked_against_the_clusters_nodes(ray_head):
    assert ray_backend_config(2, ray_head, verbose=False)["init_args"]["address"] == ray_head
    with pytest.raises(ConfigError, match=r"backend.client_cpus: must be in \(0, 2\] on the largest node"):
        ray_backend_config(3, ray_head, verbose=False)


@pytest.mark.parametrize("address", ["nonsense", "127.0.0.1:", 6379])
def test_a_malformed_address_names_the_config_key(address):
    with pytest.raises(ConfigError, match='backend.address: must be null, "auto" or "<host>:<port>"'):
        ray_backend_config(1, address, verbose=False)


def test_an_address_where_no_head_listens_fails_at_once():
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"backend.address: no Ray head node answers at 127\.0\.0\.1:\d+"):
        ray_backend_config(1, f"127.0.0.1:{free_port()}", verbose=False)
    assert time.monotonic() - started < 10
