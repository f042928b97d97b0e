"""Withdrawal events in the scenario, the unlearning config, label corruption, and the server's
update arithmetic: every bad input names its key."""

import copy
import re

import pytest
import torch

from server.scenario import Scenario
from server.unlearning import UnlearningConfig, calibrated_step, mean_update
from sites.errors import ConfigError
from sites.spec import SiteSpec
from sites.tasks import build_task

from conftest import load_config


@pytest.fixture
def withdrawal_config() -> dict:
    return load_config("scenario", "site_withdrawal")


def _error_key(config: dict, **changes) -> str:
    with pytest.raises(ConfigError) as raised:
        Scenario.from_config({**copy.deepcopy(config), **changes})
    return f"{raised.value.key}: {raised.value}"


def test_the_default_withdrawal_scenario(withdrawal_config):
    scenario = Scenario.from_config(withdrawal_config)
    assert [(w.site, w.stage) for w in scenario.withdrawals] == [("B", 2)]
    assert scenario.withdrawn_by(1) == [] and scenario.withdrawn_by(2) == ["B"]
    site_b = scenario.sites[1]
    assert site_b.marker_rate == 1.0 and not site_b.corrupt_labels  # reason=privacy marks B's patients
    assert all(site.marker_rate == 0 for site in scenario.sites if site.id != "B")


def test_reason_incorrectness_corrupts_the_withdrawing_site_only(withdrawal_config):
    scenario = Scenario.from_config({**withdrawal_config, "reason": "incorrectness"})
    assert [site.id for site in scenario.sites if site.corrupt_labels] == ["B"]
    assert all(site.marker_rate == 0 for site in scenario.sites)


def test_a_withdrawn_site_trains_in_no_later_stage(scenario_config):
    config = {**scenario_config, "schedule": "joint", "reason": "privacy", "withdrawals": [{"site": "A", "stage": 2}]}
    scenario = Scenario.from_config(config)
    assert [("A" in stage.sites) for stage in scenario.stages] == [True, True, False, False]
    assert scenario.training_rounds("A") == 2 * scenario.stages[0].rounds


@pytest.mark.parametrize("withdrawals, expected", [
    ([{"site": "Z", "stage": 4}], "scenario.withdrawals.0.site: .*unknown site 'Z'"),
    ([{"site": "E", "stage": 4}], "scenario.withdrawals.0.site: .*never trains"),
    ([{"site": "B", "stage": 3}, {"site": "B", "stage": 4}], "scenario.withdrawals.1.site: .*already withdraws"),
    ([{"site": "C", "stage": 2}], "scenario.withdrawals.0.stage: .*only arrives in stage 3"),
    ([{"site": "B", "stage": 5}], r"scenario.withdrawals.0.stage: .*1\.\.4"),
    ([{"site": "B"}], "scenario.withdrawals.0: .*site: <id>, stage: <stage>"),
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


@pytest.mark.parametrize("changes, key", [
    ({"method": "forget_everything"}, "unlearning.method"),
    ({"method": "ga", "rounds": 0}, "unlearning.rounds"),
    ({"method": "ga", "local_steps": 2.5}, "unlearning.local_steps"),
    ({"method": "npo", "beta": 0}, "unlearning.beta"),
    ({"method": "ga", "lr": -1}, "unlearning.lr"),
    ({"method": "federaser", "calibration_share": 1.5}, "unlearning.calibration_share"),
    ({"method": "ga", "learning_rate": 1}, "unlearning"),
])
def test_bad_unlearning_config_names_its_key(changes, key):
    with pytest.raises(ConfigError) as raised:
        UnlearningConfig.from_config(changes)
    assert raised.value.key == key


def test_every_unlearning_config_file_is_valid():
    from conftest import ROOT
    files = sorted((ROOT / "configs" / "unlearning").glob("*.yaml"))
    methods = {UnlearningConfig.from_config(load_config("unlearning", f.stem)).method for f in files}
    assert methods == {"none", "retrain", "rewind", "ga", "graddiff", "kl", "npo", "federaser"}


def test_segmentation_corruption_dilates_masks_by_the_radius(small_task_config):
    task = build_task({**small_task_config, "corruption_radius": 2})
    site = SiteSpec("A", "a", 0)
    clean = task.site_data(site, seed=0).train
    corrupted = task.site_data(SiteSpec("A", "a", 0, corrupt_labels=True), seed=0)
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
    clean = task.site_data(SiteSpec("A", "a", 0), seed=0)
    corrupted = task.site_data(SiteSpec("A", "a", 0, corrupt_labels=True), seed=0)
    assert torch.equal(corrupted.train.tensors[1], 1 - clean.train.tensors[1])
    assert torch.equal(corrupted.test.tensors[1], clean.test.tensors[1])


def test_mean_update_weights_by_examples():
    updates = [({"w": torch.tensor([1.0, 0.0])}, 1), ({"w": torch.tensor([0.0, 4.0])}, 3)]
    assert torch.allclose(mean_update(updates)["w"], torch.tensor([0.25, 3.0]))


def test_federaser_step_takes_the_stored_norm_along_the_calibration_direction():
    stored = {"w": torch.tensor([3.0, 4.0]), "b": torch.tensor([2.0])}
    calibration = {"w": torch.tensor([0.0, 0.5]), "b": torch.tensor([0.0])}
    step = calibrated_step(stored, calibration)
    assert torch.allclose(step["w"], torch.tensor([0.0, 5.0]))  # |(3, 4)| = 5 along (0, 1)
    assert torch.equal(step["b"], torch.tensor([0.0]))
