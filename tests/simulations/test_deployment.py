"""The Flower App of ``pyproject.toml`` on a federation of processes: a SuperLink and one SuperNode
per site on loopback, driven by ``flwr run`` (docs/deployment.md)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flwr.app import ConfigRecord, Message, RecordDict

from conftest import ROOT, assert_only_declared_content_left_the_sites, read_json
from server.discovery import discover_sites
from simulations.flower_app import compose_config, site_index
from sites.errors import ConfigError, MedsitesError

# Two sites, B joining after A; the strategy's own evaluation round is dropped (every site is
# evaluated after each stage anyway), which spares two message round trips.
OVERRIDES = "size=smoke scenario=two_sites seed=3 strategy.fraction_evaluate=0.0"
_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the SuperLink exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(f"the SuperLink did not listen on port {port} within {timeout} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def federation(tmp_path_factory) -> Path:
    """Run the smoke scenario through ``flwr run`` and, meanwhile, through the simulation engine;
    every process started here is stopped whatever happens."""
    root = tmp_path_factory.mktemp("deployment")
    home = root / "flwr-home"
    home.mkdir()
    link_port, *node_ports = (_free_port() for _ in range(3))
    (home / "config.toml").write_text(f'[superlink.loopback]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n')
    env = {**os.environ, "FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.1"}
    processes = []

    def start(name: str, *command: str, cwd: Path = root) -> subprocess.Popen:
        with (root / f"{name}.log").open("w") as log:
            processes.append(subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT))
        return processes[-1]

    try:
        simulated = start("simulation", sys.executable, "-m", "simulations.run", *OVERRIDES.split(),
                          f"hydra.run.dir={root / 'simulated'}", cwd=ROOT)
        link = start("superlink", str(_BIN / "flower-superlink"), "--insecure", "--host", "127.0.0.1",
                     "--port", str(link_port), "--disable-runtime-dependency-installation")
        _wait_for_port(link_port, link, root / "superlink.log")
        for site, port in zip("AB", node_ports):
            start(f"supernode-{site}", str(_BIN / "flower-supernode"), "--insecure", "--superlink",
                  f"127.0.0.1:{link_port}", "--port", str(port), "--node-config", f"site='{site}'")
        completed = subprocess.run(
            [str(_BIN / "flwr"), "run", str(ROOT), "loopback", "--stream",
             "--run-config", f"overrides='{OVERRIDES}' run-dir='{root / 'deployed'}'"],
            env=env, capture_output=True, text=True, timeout=600)
        (root / "flwr-run.log").write_text(completed.stdout + completed.stderr)
        assert simulated.wait(timeout=600) == 0, (root / "simulation.log").read_text()[-3000:]
        assert (root / "deployed" / "report.md").is_file(), (root / "flwr-run.log").read_text()[-3000:]
        yield root
    finally:
        for process in reversed(processes):
            _stop(process)


@pytest.mark.e2e
@pytest.mark.slow
def test_flwr_run_writes_the_run_directory(federation):
    run_dir = federation / "deployed"
    for name in ("config.yaml", "metrics.jsonl", "matrix.json", "summary.json", "report.md", "report.html"):
        assert (run_dir / name).is_file(), name
    matrix = read_json(run_dir / "matrix.json")
    assert matrix["sites"] == ["A", "B"] and [len(row) for row in matrix["R"]] == [2, 2]


@pytest.mark.e2e
@pytest.mark.slow
def test_each_supernode_plays_its_site_and_only_declared_content_crosses_the_network(federation):
    run_dir = federation / "deployed"
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {e["site"] for e in events if e["event"] == "site"} == {"A", "B"}
    assert {(e["stage"], e["site"]) for e in events if e["event"] == "train"} == {(1, "A"), (2, "B")}
    assert {(e["stage"], e["site"]) for e in events if e["event"] == "matrix"} == {(t, s) for t in (1, 2) for s in "AB"}
    assert_only_declared_content_left_the_sites(run_dir)


@pytest.mark.e2e
@pytest.mark.slow
def test_same_config_and_matrix_as_the_simulation(federation):
    deployed, simulated = federation / "deployed", federation / "simulated"
    assert (deployed / "config.yaml").read_text() == (simulated / "config.yaml").read_text()
    assert read_json(deployed / "matrix.json") == read_json(simulated / "matrix.json")



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


@pytest.mark.parametrize("node_config, key", [({"site": "Z"}, "site"), ({}, "site"), ({"partition-id": 2}, "partition-id")])
def test_a_supernode_must_name_a_site_of_the_scenario(node_config, key):
    with pytest.raises(ConfigError) as raised:
        site_index(node_config, ("A", "B"))
    assert raised.value.key == key


def test_a_supernode_plays_the_site_its_node_config_names():
    assert site_index({"site": "B"}, ("A", "B")) == 1
    assert site_index({"partition-id": 0}, ("A", "B")) == 0


def test_a_supernodes_manifest_reaches_its_task_config():
    cfg = compose_config("task=debiasing size=smoke", ("task.manifest='/data/site a/manifest.csv'",))
    assert cfg.task.manifest == "/data/site a/manifest.csv" and cfg.scenario.rounds_per_stage == 1


def test_overrides_that_do_not_compose_name_the_run_config_key():
    for overrides in ("scenario=nowhere", "'unbalanced"):
        with pytest.raises(ConfigError) as raised:
            compose_config(overrides)
        assert raised.value.key == "overrides"
