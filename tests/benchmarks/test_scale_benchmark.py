"""The many-sites benchmark's own logic: the scenarios it generates and how it splits a run's time."""

import pytest
from conftest import build_scenario

from benchmarks.scale import Observation, scanner_ranges, scenario_config, split_time


@pytest.mark.parametrize(("layout", "stages"), [("together", [20]), ("sequential", [8, 8, 4])])
def test_generated_scenario_is_valid_with_distinct_sites(layout, stages):
    config = scenario_config(20, layout, rounds=3, stage_size=8)
    scenario = build_scenario(config)
    assert len(set(scenario.site_ids)) == 20
    assert [len(stage.sites) for stage in scenario.stages] == stages
    assert all(stage.rounds == 3 for stage in scenario.stages)
    assert all(site.arrival is not None for site in scenario.sites)


def test_signatures_are_seeded_within_the_default_scenarios_ranges():
    ranges = scanner_ranges()
    small, large = scenario_config(10, "together", 1, 10), scenario_config(50, "sequential", 1, 10)
    assert small["sites"] == large["sites"][:10]  # site i looks the same whatever N
    assert scenario_config(10, "together", 1, 10, seed=1)["sites"] != small["sites"]
    signatures = [site["scanner"] for site in large["sites"]]
    assert len({tuple(s.values()) for s in signatures}) == 50
    for name, (low, high) in ranges.items():
        assert all(low <= s[name] <= high for s in signatures)


def test_each_batch_is_charged_with_the_time_since_the_previous_one():
    observation = Observation(started=0.0, ended=9.0, batches=[
        (("site", 0, 0), 1.0), (("data", 0, 0), 2.0),
        (("train", 1, 1), 3.0), (("evaluate", 1, 1), 3.5), (("train", 1, 2), 4.5), (("evaluate", 1, 2), 5.5),
        (("matrix", 1, 2), 6.0), (("train", 2, 3), 7.0), (("evaluate", 2, 3), 7.2), (("matrix", 2, 3), 8.0),
    ])
    timing = split_time(observation)
    assert timing.wall == 9.0 and timing.startup == 2.0 and timing.closing == 1.0
    assert timing.rounds == pytest.approx([1.5, 2.0, 1.2])
    assert timing.stage_evaluations == pytest.approx([0.5, 0.8])
