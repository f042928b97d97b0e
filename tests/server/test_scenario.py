"""The scenario timeline: stages, arrivals, held-out sites, and every invalid form named."""

import copy

import pytest
from conftest import build_scenario, load_config

from sites.errors import ConfigError


def test_default_timeline(scenario):
    assert [stage.sites for stage in scenario.stages] == [("A",), ("B",), ("C",), ("D",)]
    assert [site.arrival for site in scenario.sites] == [1, 2, 3, 4, None]
    assert scenario.held_out == ("E",)
    assert scenario.seen_by(2) == ["A", "B"]
    assert all(stage.rounds == 5 for stage in scenario.stages)


def test_joint_schedule_trains_every_training_site_from_stage_one(scenario_config):
    scenario = build_scenario({**scenario_config, "schedule": "joint"})
    assert [stage.sites for stage in scenario.stages] == [("A", "B", "C", "D")] * 4
    assert [site.arrival for site in scenario.sites] == [1, 1, 1, 1, None]


def _with(config, **changes):
    config = copy.deepcopy(config)
    config.update(changes)
    return config


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"stages": [["A"], ["B", "A"], ["C"], ["D"]]}, "scenario.stages.1", "already trains in stage 1"),
        ({"stages": [["A"], [], ["C"], ["D"]]}, "scenario.stages.1", "must hold at least 1 item(s) (got [])"),
        ({"stages": []}, "scenario.stages", "must hold at least 1 item(s) (got [])"),
        ({"rounds_per_stage": 0}, "scenario.rounds_per_stage", "must be greater than 0 (got 0)"),
        ({"rounds_per_stage": 2.5}, "scenario.rounds_per_stage", "must be a valid integer (got 2.5)"),
        ({"stages": [["A"], ["Z"], ["C"], ["D"]]}, "scenario.stages.1", "unknown site 'Z'"),
        ({"held_out": ["Q"]}, "scenario.held_out", "unknown site 'Q'"),
        ({"held_out": ["A", "E"]}, "scenario.held_out", "'A' trains in stage 1"),
        ({"held_out": []}, "scenario.stages", "'E' is in no stage"),
        ({"schedule": "random"}, "scenario.schedule", "must be 'sequential' or 'joint' (got 'random')"),
    ],
)
def test_invalid_scenarios_name_their_key(scenario_config, changes, key, words):
    with pytest.raises(ConfigError) as raised:
        build_scenario(_with(scenario_config, **changes))
    assert raised.value.key == key
    assert words in str(raised.value)


def test_duplicate_and_malformed_sites(scenario_config):
    sites = copy.deepcopy(scenario_config["sites"])
    sites[2]["id"] = "A"
    with pytest.raises(ConfigError, match="scenario.sites.2.id: duplicate site id 'A'"):
        build_scenario(_with(scenario_config, sites=sites))
    sites = copy.deepcopy(scenario_config["sites"])
    sites[1]["scanner"]["gamma"] = 2.0
    with pytest.raises(ConfigError, match=r"scenario.sites.1.scanner: unknown keys \['gamma'\]"):
        build_scenario(_with(scenario_config, sites=sites))


def test_multivendor_sites_keep_the_default_timeline_without_polarity_flips(scenario):
    multivendor = build_scenario(load_config("scenario", "multivendor_sites"))
    assert multivendor.site_ids == scenario.site_ids and multivendor.stages == scenario.stages
    scanners = [site.scanner for site in multivendor.sites]
    assert all(scanner.contrast > 0 for scanner in scanners)  # the organ brighter at every site
    # Sites differ in every field of the signature, the field of view included.
    for field in ("gain", "offset", "contrast", "noise", "blur", "bias_field", "field_of_view"):
        assert len({getattr(scanner, field) for scanner in scanners}) > 2, field
