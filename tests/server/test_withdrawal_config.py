"""Withdrawal events in the scenario and label corruption: every bad input names its key."""

import copy
import re

import pytest
import torch
from conftest import build_scenario

from sites.errors import ConfigError
from sites.spec import SiteSpec
from sites.tasks import build_task


def _error_key(config: dict, **changes) -> str:
    with pytest.raises(ConfigError) as raised:
        build_scenario({**copy.deepcopy(config), **changes})
    return f"{raised.value.key}: {raised.value}"


def test_the_default_withdrawal_scenario(withdrawal_config):
    scenario = build_scenario(withdrawal_config)
    assert [(w.site, w.stage) for w in scenario.withdrawals] == [("B", 2)]
    assert scenario.withdrawals_after(1) == [] and scenario.gone_at(scenario.withdrawals[0]) == ["B"]
    site_b = scenario.sites[1]
    assert site_b.marker_rate == 1.0 and not site_b.corrupt_labels  # reason=privacy marks B's patients
    assert all(site.marker_rate == 0 for site in scenario.sites if site.id != "B")


def test_reason_incorrectness_corrupts_the_withdrawing_site_only(withdrawal_config):
    scenario = build_scenario({**withdrawal_config, "reason": "incorrectness"})
    assert [site.id for site in scenario.sites if site.corrupt_labels] == ["B"]
    assert all(site.marker_rate == 0 for site in scenario.sites)


def test_a_withdrawn_site_trains_in_no_later_stage(scenario_config):
    config = {**scenario_config, "schedule": "joint", "reason": "privacy", "withdrawals": [{"site": "A", "stage": 2}]}
    scenario = build_scenario(config)
    assert [("A" in stage.sites) for stage in scenario.stages] == [True, True, False, False]
    assert scenario.training_rounds("A") == 2 * scenario.stages[0].rounds


@pytest.mark.parametrize("withdrawals, expected", [
    ([{"site": "Z", "stage": 4}], "scenario.withdrawals.0.site: .*unknown site 'Z'"),
    ([{"site": "E", "stage": 4}], "scenario.withdrawals.0.site: .*never trains"),
    ([{"site": "B", "stage": 3}, {"site": "B", "stage": 4}], "scenario.withdrawals.1.site: .*already withdraws"),
    ([{"site": "C", "stage": 2}], "scenario.withdrawals.0.stage: .*only arrives in stage 3"),
    ([{"site": "B", "stage": 5}], r"scenario.withdrawals.0.stage: .*1\.\.4"),
    ([{"site": "B"}], "scenario.withdrawals.0.stage: is required"),
])
def test_bad_withdrawals_name_their_key(scenario_config, withdrawals, expected):
    message = _error_key(scenario_config, withdrawals=withdrawals, reason="privacy")
    assert re.search(expected, message), message


def test_a_withdrawal_needs_a_reason(withdrawal_config):
    assert _error_key(withdrawal_config, reason="boredom").startswith("scenario.reason")
    assert _error_key(withdrawal_config, reason=None).startswith("scenario.reason")


def test_a_stage_left_empty_by_withdrawals_is_an_error(withdrawal_config):
    config = {**withdrawal_config, "schedule": "joint", "stages": [["A"], ["B"]], "held_out": ["C", "D", "E"],
              "withdrawals": [{"site": "A", "stage": 1}, {"site": "B", "stage": 1}]}
    assert _error_key(config).startswith("scenario.stages.1")


def test_segmentation_corruption_dilates_masks_by_the_radius(small_task_config):
    task = build_task({**small_task_config, "corruption_radius": 2})
    site = SiteSpec(id="A", name="a", index=0)
    clean = task.site_data(site, seed=0).train
    corrupted = task.site_data(SiteSpec(id="A", name="a", index=0, corrupt_labels=True), seed=0)
    mask, wrong = clean.tensors[1][0, 0], corrupted.train.tensors[1][0, 0]
    assert torch.equal(corrupted.train.tensors[0], clean.tensors[0])
    assert wrong.dtype == mask.dtype and bool((wrong >= mask).all()) and wrong.sum() > mask.sum()
    rows = mask.any(dim=1).nonzero()[:, 0]
    wrong_rows = wrong.any(dim=1).nonzero()[:, 0]
    assert (rows.min() - wrong_rows.min(), wrong_rows.max() - rows.max()) == (2, 2)
    assert torch.equal(corrupted.test.tensors[1], task.site_data(site, seed=0).test.tensors[1])  # test stays correct


@pytest.mark.parametrize("fixture", ["small_debiasing_config", "small_grading_config"])
def test_classification_corruption_swaps_the_labels(request, fixture):
    task = build_task(request.getfixturevalue(fixture))
    clean = task.site_data(SiteSpec(id="A", name="a", index=0), seed=0)
    corrupted = task.site_data(SiteSpec(id="A", name="a", index=0, corrupt_labels=True), seed=0)
    assert torch.equal(corrupted.train.tensors[1], 1 - clean.train.tensors[1])
    assert torch.equal(corrupted.test.tensors[1], clean.test.tensors[1])


def test_several_withdrawals_are_handled_in_order(scenario_config):
    config = {**scenario_config, "reason": "privacy",
              "withdrawals": [{"site": "C", "stage": 3}, {"site": "A", "stage": 3}, {"site": "B", "stage": 4}]}
    scenario = build_scenario(config)
    c, a, b = scenario.withdrawals
    assert (scenario.gone_at(c), scenario.gone_at(a), scenario.gone_at(b)) == (["C"], ["C", "A"], ["C", "A", "B"])
    assert [(stage.index, stage.sites) for stage in scenario.replay_stages(a)] == [(2, ("B",))]
    assert [(stage.index, stage.sites) for stage in scenario.replay_stages(b, first_stage=2)] == [(4, ("D",))]


def test_the_strategy_must_fit_the_replayed_stages(tmp_path):
    from conftest import ROOT
    from hydra import compose, initialize_config_dir

    from simulations.run import prepare
    overrides = ["scenario=site_withdrawal", "strategy.min_train_nodes=2", "strategy.min_available_nodes=2"]
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = compose(config_name="config", overrides=overrides)
        fits = compose(config_name="config", overrides=[*overrides, "scenario.withdrawals=[]"])
    prepare(fits, tmp_path)  # every stage of the timeline has two sites
    with pytest.raises(ConfigError, match="strategy"):
        prepare(cfg, tmp_path)  # retraining stage 2 without B leaves D alone


def test_a_dp_withdrawal_runs_and_its_target_epsilon_plans_for_the_unlearning_steps(tmp_path):
    from conftest import ROOT
    from hydra import compose, initialize_config_dir

    from simulations.run import prepare
    overrides = ["scenario=site_withdrawal", "privacy=dp", "unlearning=graddiff", "size=smoke"]
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        plan = prepare(compose(config_name="config", overrides=overrides), tmp_path).plan
    # one round of 2 steps in each site's own stage (size=smoke), E held out
    assert plan.planned_steps == {"A": 2, "B": 2, "C": 2, "D": 2, "E": 0}
    # graddiff: 4 rounds x 5 steps at B (forget) and at A, C, D (retain)
    assert plan.planned_dp_steps == {"A": 22, "B": 22, "C": 22, "D": 22, "E": 0}
