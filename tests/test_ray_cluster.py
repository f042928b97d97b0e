"""A run attached to a running Ray cluster (``backend.address``): a head node on loopback,
started and stopped by the test."""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import read_json, run_cli
from simulations.engine import ray_backend_config
from sites.errors import ConfigError


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    """The address of a 2-CPU Ray head on 127.0.0.1. ``ray start --block`` stops its own head's
    processes when terminated, where ``ray stop`` would stop every Ray instance on the machine."""
    ray_cli = shutil.which("ray")
    if ray_cli is None:
        pytest.skip("the `ray` command line is not installed")
    # Short and private: Ray's unix sockets live under it (paths of at most ~107 characters), and
    # `ray start` records its head there, not in /tmp/ray where other runs would find it.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    port = _free_port()
    with (temp_dir / "start.log").open("w") as log:
        head = subprocess.Popen([ray_cli, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
                                 f"--ray-client-server-port={_free_port()}", "--num-cpus=2", "--include-dashboard=false",
                                 "--disable-usage-stats", f"--temp-dir={temp_dir}"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (temp_dir / "ray_current_cluster").exists():  # written once the head is up
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not start:\n{(temp_dir / 'start.log').read_text()}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()  # its reaper process then kills the head's process group
            head.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.e2e
def test_a_run_attached_to_a_cluster_gives_the_local_runs_matrix(ray_head, fedavg_run, tmp_path):
    completed = run_cli("size=smoke", "seed=3", f"backend.address={ray_head}", f"hydra.run.dir={tmp_path}")
    assert completed.returncode == 0, completed.stderr
    assert read_json(tmp_path / "matrix.json") == read_json(fedavg_run / "matrix.json")


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
        ray_backend_config(1, f"127.0.0.1:{_free_port()}", verbose=False)
    assert time.monotonic() - started < 10
