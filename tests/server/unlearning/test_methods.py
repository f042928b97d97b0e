"""The server's unlearning methods: their config (every bad input names its key), the update
arithmetic, what each plans and replays, and a user's site objective."""


import pytest
import torch
from conftest import build_scenario, load_config
from flwr.app import ArrayRecord

from server.unlearning import NoUnlearning, Retrain, Rewind, UnlearningContext, build_unlearning, calibrated_step
from sites.errors import ConfigError
from sites.tasks import build_task
from strategies.aggregation import weighted_mean

SITE_OBJECTIVES = "server.unlearning.SiteObjectives"


@pytest.mark.parametrize("config, key, reason", [
    ({"_target_": "server.unlearning.ForgetEverything"}, "unlearning._target_", "cannot import"),
    ({"_target_": "server.unlearning.base.moved"}, "unlearning._target_",
     "is not a server.unlearning.UnlearningMethod subclass"),
    ({"_target_": SITE_OBJECTIVES, "objective": "forget_everything"}, "unlearning.objective",
     "must be one of 'ga', 'graddiff', 'kl', 'npo' or the import path of a site unlearning objective class "
     "(sites.unlearning.SiteObjective) (got 'forget_everything')"),
    ({"_target_": SITE_OBJECTIVES, "objective": "ga", "rounds": 0}, "unlearning.rounds",
     "must be greater than 0 (got 0)"),
    ({"_target_": SITE_OBJECTIVES, "objective": "ga", "local_steps": 2.5}, "unlearning.local_steps",
     "must be a valid integer (got 2.5)"),
    ({"_target_": SITE_OBJECTIVES, "objective": "npo", "beta": 0}, "unlearning.beta", "must be greater than 0 (got 0)"),
    ({"_target_": SITE_OBJECTIVES, "objective": "ga", "lr": -1}, "unlearning.lr", "must be greater than 0 (got -1)"),
    ({"_target_": "server.unlearning.FedEraser", "calibration_share": 1.5}, "unlearning.calibration_share",
     "must be less than or equal to 1 (got 1.5)"),
    ({"_target_": SITE_OBJECTIVES, "objective": "ga", "learning_rate": 1}, "unlearning",
     "unknown keys ['learning_rate']"),
    ({"_target_": SITE_OBJECTIVES, "objective": "ga", "lr": "fast"}, "unlearning.lr",
     "must be a valid number (got 'fast')"),
    ({"_target_": "server.unlearning.NoUnlearning", "rounds": 4}, "unlearning", "unknown keys ['rounds'] (known: [])"),
])
def test_bad_unlearning_config_names_its_key(config, key, reason):
    with pytest.raises(ConfigError) as raised:
        build_unlearning(config)
    assert raised.value.key == key and reason in raised.value.problem
    assert "\n" not in str(raised.value)


def test_every_unlearning_config_file_is_valid():
    from conftest import ROOT
    files = sorted((ROOT / "configs" / "unlearning").glob("*.yaml"))
    methods = {f.stem: build_unlearning(load_config("unlearning", f.stem)) for f in files}
    assert {stem: method.name for stem, method in methods.items()} == {stem: stem for stem in methods}
    assert set(methods) == {"none", "retrain", "rewind", "ga", "graddiff", "kl", "npo", "federaser"}
    # what each declares: FedEraser alone needs the stored updates, retrain alone is the oracle
    assert [stem for stem, method in methods.items() if method.needs_updates] == ["federaser"]
    assert [stem for stem, method in methods.items() if method.is_oracle] == ["retrain"]


def test_weighted_mean_weights_by_examples():
    updates = [({"w": torch.tensor([1.0, 0.0])}, 1), ({"w": torch.tensor([0.0, 4.0])}, 3)]
    assert torch.allclose(weighted_mean(updates)["w"], torch.tensor([0.25, 3.0]))


def test_federaser_step_takes_the_stored_norm_along_the_calibration_direction():
    stored = {"w": torch.tensor([3.0, 4.0]), "b": torch.tensor([2.0])}
    calibration = {"w": torch.tensor([0.0, 0.5]), "b": torch.tensor([0.0])}
    step = calibrated_step(stored, calibration)
    assert torch.allclose(step["w"], torch.tensor([0.0, 5.0]))  # |(3, 4)| = 5 along (0, 1)
    assert torch.equal(step["b"], torch.tensor([0.0]))


class _RecordingTimeline:
    """A stand-in for the stage runner and the views: records what it is asked to train."""

    def __init__(self):
        self.trained = []

    def train(self, strategy, view, stage, arrays):
        assert view == ("withdrawal", list(stage.sites))
        w = arrays.to_torch_state_dict()["w"]
        self.trained.append((stage.index, stage.sites, w.item()))
        return ArrayRecord({"w": w + 1}), {}

    def exchange(self, sites, event):
        return event, sites


@pytest.fixture
def checkpoints(tmp_path):
    for t in range(1, 5):
        torch.save({"w": torch.tensor([10.0 * t])}, tmp_path / f"stage_{t}.pt")
    return tmp_path


def _context(scenario, timeline, checkpoints):
    return UnlearningContext(scenario, task=None, strategy=None, runner=timeline, views=timeline,
                             initial=ArrayRecord({"w": torch.tensor([0.0])}), checkpoints=checkpoints, updates=None,
                             timeout=1.0)


def test_retrain_replays_every_stage_from_the_initial_model_without_the_site(scenario_config, checkpoints):
    scenario = build_scenario({**scenario_config, "reason": "privacy", "withdrawals": [{"site": "B", "stage": 3}]})
    timeline = _RecordingTimeline()
    context = _context(scenario, timeline, checkpoints)
    oracle = context.retrain(scenario.withdrawals[0])
    assert timeline.trained == [(1, ("A",), 0.0), (3, ("C",), 1.0)]
    assert oracle.to_torch_state_dict()["w"].item() == 2.0
    after = Retrain().unlearn(scenario.withdrawals[0], ArrayRecord({"w": torch.tensor([99.0])}), context)
    assert after.to_torch_state_dict()["w"].item() == 2.0  # the same retraining, whatever the model before


def test_rewind_starts_before_the_earliest_arrival_of_the_sites_gone(scenario_config, checkpoints):
    config = {**scenario_config, "reason": "privacy",
              "withdrawals": [{"site": "A", "stage": 3}, {"site": "C", "stage": 4}]}
    scenario = build_scenario(config)
    first, second = scenario.withdrawals
    timeline = _RecordingTimeline()
    Rewind().unlearn(first, ArrayRecord({"w": torch.tensor([99.0])}), _context(scenario, timeline, checkpoints))
    assert timeline.trained == [(2, ("B",), 0.0), (3, ("C",), 1.0)]  # A came first: from the initial model
    timeline.trained.clear()
    # C arrived in stage 3, but A (gone before it) arrived in stage 1: stage 2's checkpoint still holds A
    Rewind().unlearn(second, ArrayRecord({"w": torch.tensor([99.0])}), _context(scenario, timeline, checkpoints))
    assert timeline.trained == [(2, ("B",), 0.0), (4, ("D",), 1.0)]


def test_rewind_uses_the_checkpoint_before_the_site_arrived(scenario_config, checkpoints):
    scenario = build_scenario({**scenario_config, "reason": "privacy", "withdrawals": [{"site": "C", "stage": 4}]})
    timeline = _RecordingTimeline()
    before = ArrayRecord({"w": torch.tensor([99.0])})
    Rewind().unlearn(scenario.withdrawals[0], before, _context(scenario, timeline, checkpoints))
    assert timeline.trained == [(4, ("D",), 20.0)]  # stage_2.pt, then stage 4 without C


def test_none_keeps_the_model(scenario_config, checkpoints):
    scenario = build_scenario({**scenario_config, "reason": "privacy", "withdrawals": [{"site": "C", "stage": 4}]})
    before = ArrayRecord({"w": torch.tensor([99.0])})
    context = _context(scenario, _RecordingTimeline(), checkpoints)
    assert NoUnlearning().unlearn(scenario.withdrawals[0], before, context) is before


@pytest.mark.parametrize(("method", "expected"), [
    ("none", {}),
    ("ga", {"B": 20}),  # rounds 4 x local_steps 5 (configs/unlearning/ga.yaml), at B only
    ("npo", {"B": 20}),
    ("graddiff", {"B": 20, "A": 20, "C": 20, "D": 20}),  # and the retain part at every site that trained
    ("kl", {"B": 20, "A": 20, "C": 20, "D": 20}),
    ("retrain", {"A": 20, "C": 20, "D": 20}),  # stages 1 and 2 without B: 5 rounds x 4 steps each
    ("rewind", {"D": 20}),  # B arrived in stage 2: stage 2 again, without it
    ("federaser", {"D": 10}),  # stage 2's 5 rounds calibrated with half of 4 steps
])
def test_each_method_plans_the_local_steps_it_takes_at_each_site(withdrawal_config, small_task_config, method,
                                                                   expected):
    scenario = build_scenario(withdrawal_config)
    task = build_task({**small_task_config, "local_steps": 4})
    planned = build_unlearning(load_config("unlearning", method)).planned_steps(scenario.withdrawals[0], scenario,
                                                                                 task)
    assert dict(planned) == expected


def test_a_users_site_objective_runs_its_retain_part_at_the_remaining_sites(withdrawal_config, plugins):
    scenario = build_scenario(withdrawal_config)
    (withdrawal,) = scenario.withdrawals
    mine = build_unlearning({"_target_": SITE_OBJECTIVES, "objective": "my_site_objective.FlattenPredictions"})
    assert mine.name == "my_site_objective.FlattenPredictions"
    assert mine.retain_sites(withdrawal, scenario) == ["A", "C", "D"]
    assert build_unlearning({"_target_": SITE_OBJECTIVES, "objective": "npo"}).retain_sites(withdrawal, scenario) == []
