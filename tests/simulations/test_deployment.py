"""The Flower App of ``pyproject.toml`` on a federation of processes: a SuperLink and one SuperNode
per site on loopback, secured as docs/deployment.md says, driven by ``flwr run``; the
``deployment`` fixture (tests/helpers/flower_federation.py) runs it."""

import json

import pytest
from conftest import assert_only_declared_content_left_the_sites, read_json
from omegaconf import OmegaConf

from simulations.flower_app import compose_config, site_index
from sites.errors import ConfigError


@pytest.mark.e2e
@pytest.mark.slow
def test_flwr_run_writes_the_run_directory(deployment):
    run_dir = deployment / "deployed"
    for name in ("config.yaml", "metrics.jsonl", "matrix.json", "summary.json", "report.md", "report.html"):
        assert (run_dir / name).is_file(), name
    matrix = read_json(run_dir / "matrix.json")
    assert matrix["sites"] == ["A", "B"] and [len(row) for row in matrix["R"]] == [2, 2]


@pytest.mark.e2e
@pytest.mark.slow
def test_each_supernode_plays_its_site_and_only_declared_content_crosses_the_network(deployment):
    run_dir = deployment / "deployed"
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {e["site"] for e in events if e["event"] == "site"} == {"A", "B"}
    assert {(e["stage"], e["site"]) for e in events if e["event"] == "train"} == {(1, "A"), (2, "B")}
    assert {(e["stage"], e["site"]) for e in events if e["event"] == "matrix"} == {(t, s) for t in (1, 2) for s in "AB"}
    assert_only_declared_content_left_the_sites(run_dir)


@pytest.mark.e2e
@pytest.mark.slow
def test_same_config_and_matrix_as_the_simulation(deployment):
    """The same config but for the site-node registry, which only the deployment has."""
    deployed, simulated = deployment / "deployed", deployment / "simulated"
    configs = [OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml")) for run_dir in (deployed, simulated)]
    assert configs[1].pop("deployment") == {"site_nodes": None}
    assert configs[0].pop("deployment")["site_nodes"] is not None and configs[0] == configs[1]
    assert read_json(deployed / "matrix.json") == read_json(simulated / "matrix.json")


@pytest.mark.parametrize("node_config, key",
                         [({"site": "Z"}, "site"), ({}, "site"), ({"partition-id": 2}, "partition-id")])
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
