"""The grading task: config checks, data, models, cross-modality guidance and primary selection."""

import math

import pytest
import torch
from conftest import task_config_error
from torch import nn
from torch.utils.data import TensorDataset

from sites.data.brain import MODALITIES
from sites.losses import cross_modality_guidance, feature_guidance
from sites.networks.mc3 import MC3
from sites.networks.multi_branch_mc3 import MultiBranchMC3
from sites.protocol import StatisticsQuery, TrainConfig
from sites.tasks import SiteData, build_task
from sites.tasks.capabilities import REPLAY_INTENSITY_SCALE
from sites.tasks.grading import concordant_pairs


@pytest.mark.parametrize(
    ("changes", "key", "reason"),
    [
        ({"model": "resnet"}, "task.model", "must be 'single', 'early_fusion', 'late_fusion' or 'cmg' (got 'resnet')"),
        ({"modality": "dwi"}, "task.modality", "must be 't1', 't1ce', 't2' or 'flair' (got 'dwi')"),
        ({"conv3d_stages": 3}, "task.conv3d_stages", "must be at most len(channels) = 2 (got 3)"),
        ({"image_size": 10}, "task.image_size", "must be divisible by 2 ** len(channels) = 4 (got 10)"),
        ({"guidance_weight": -1.0}, "task.guidance_weight", "must be greater than or equal to 0 (got -1.0)"),
        ({"guidance_temperature": 0.0}, "task.guidance_temperature", "must be greater than 0 (got 0.0)"),
        ({"guidance": "attention"}, "task.guidance", "must be 'logit' or 'feature' (got 'attention')"),
        ({"primary_selection": "accuracy"}, "task.primary_selection", "must be 'auc' or 'nll' (got 'accuracy')"),
        ({"warmup_share": 0.0}, "task.warmup_share", "must be greater than 0 (got 0.0)"),
        ({"warmup_share": 1.0}, "task.warmup_share", "must be less than 1 (got 1.0)"),
        ({"depth": 0}, "task.depth", "must be greater than 0 (got 0)"),
        ({"n_validation": 0}, "task.n_validation", "must be greater than 0 (got 0)"),
        ({"channels": [4, "wide"]}, "task.channels.1", "must be a valid integer (got 'wide')"),
    ],
)
def test_bad_grading_config_names_its_key(small_grading_config, changes, key, reason):
    assert task_config_error(small_grading_config, changes) == (key, reason)


def test_a_site_has_train_validation_and_test_cases_of_both_grades(small_grading_config, scenario):
    task = build_task(small_grading_config)
    data = task.load_site(scenario.sites[1], seed=0)
    assert [len(split) for split in (data.train, data.validation, data.test)] == [16, 8, 8]
    volumes, grades = data.train.tensors
    assert volumes.shape == (16, 4, 4, 16, 16) and grades.dtype == torch.int64
    assert sorted(grades.unique().tolist()) == [0, 1]
    again = task.load_site(scenario.sites[1], seed=0)
    assert torch.equal(again.test.tensors[0], data.test.tensors[0])
    other = task.load_site(scenario.sites[2], seed=0)
    assert not torch.equal(other.test.tensors[0], data.test.tensors[0])


@pytest.mark.parametrize(("model", "network"), [("single", MC3), ("early_fusion", MC3),
                                                ("late_fusion", MultiBranchMC3), ("cmg", MultiBranchMC3)])
def test_each_model_maps_a_batch_of_cases_to_two_logits(small_grading_config, scenario, model, network):
    task = build_task({**small_grading_config, "model": model})
    net = task.build_model()
    assert isinstance(net, network)
    volumes = task.load_site(scenario.sites[0], seed=0).test.tensors[0]
    assert net(task._inputs(volumes)).shape == (8, 2)


def test_single_sees_only_its_modality(small_grading_config, scenario):
    task = build_task({**small_grading_config, "model": "single", "modality": "t2"})
    torch.manual_seed(0)
    net = task.build_model().eval()
    volumes = task.load_site(scenario.sites[0], seed=0).test.tensors[0]
    changed = volumes.clone()
    changed[:, [0, 1, 3]] = 0.0
    torch.testing.assert_close(net(task._inputs(changed)), net(task._inputs(volumes)))


def test_attention_switch_adds_or_removes_the_dual_attention(small_grading_config):
    with_attention = build_task(small_grading_config).build_model()
    without = build_task({**small_grading_config, "attention": False}).build_model()
    assert sum(p.numel() for p in with_attention.parameters()) > sum(p.numel() for p in without.parameters())
    assert all(isinstance(branch.attention, nn.Identity) for branch in without.branches)


def test_cmg_splits_the_step_budget_between_its_two_phases(small_grading_config):
    task = build_task({**small_grading_config, "local_steps": 10, "warmup_share": 0.5})
    assert [(p.name, p.statistics) for p in task.phases] == [("branches", False), ("guided", True)]
    assert task.phase_steps("branches") == task.phase_steps("guided") == 5
    assert build_task({**small_grading_config, "model": "late_fusion", "local_steps": 10}).phase_steps("train") == 10
    longer = build_task({**small_grading_config, "local_steps": 10, "warmup_share": 0.7})
    assert (longer.phase_steps("branches"), longer.phase_steps("guided")) == (7, 3)


def test_the_guided_phase_trains_for_its_share_of_steps(small_grading_config, scenario, monkeypatch):
    task = build_task({**small_grading_config, "local_steps": 10, "warmup_share": 0.8})
    data = task.load_site(scenario.sites[0], seed=0)
    calls = []
    original = task.batch_loss
    monkeypatch.setattr(task, "batch_loss", lambda *args: calls.append(1) or original(*args))
    task.train(task.build_model(), data.train, seed=0,
               config=TrainConfig(phase="guided", entries={"primary-modality": "t2"}))
    assert len(calls) == 2


# --- cross-modality guidance -------------------------------------------------------------------

def test_guidance_is_the_kl_divergence_from_the_primary_by_hand():
    # primary p = (1/2, 1/2), secondary q = (3/4, 1/4): KL(p || q) = 1/2 ln(4/3)
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0]]], requires_grad=True)
    loss = cross_modality_guidance(logits, primary=0, temperature=1.0)
    assert loss.item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    loss.backward()
    torch.testing.assert_close(logits.grad, torch.tensor([[[0.0, 0.0], [0.25, -0.25]]]))  # q - p; primary: none


def test_guidance_averages_the_secondaries_and_scales_by_temperature_squared():
    logits = torch.tensor([[[2.0, 0.0], [2.0, 0.0], [0.0, 2.0]]])
    # Branch 1 agrees with the primary; branch 2 is its mirror image.
    p = torch.softmax(torch.tensor([1.0, 0.0]), 0)  # at T = 2
    kl_mirror = float((p * (p.log() - p.flip(0).log())).sum())
    assert cross_modality_guidance(logits, 0, temperature=2.0).item() == pytest.approx(4 * kl_mirror / 2, rel=1e-5)
    assert cross_modality_guidance(logits[:, :2], 0, temperature=2.0).item() == pytest.approx(0.0, abs=1e-7)


def test_feature_guidance_is_the_projected_secondaries_squared_error_by_hand():
    features = torch.tensor([[[1.0, 2.0], [5.0, 5.0], [7.0, 7.0]]], requires_grad=True)
    # Branch 1's projection lands on (2, 0): squared errors 1 and 4 -> mean 2.5; branch 2's
    # lands on the primary's features exactly -> 0. Mean over the two secondaries: 1.25.
    projected = torch.tensor([[[9.0, 9.0], [2.0, 0.0], [1.0, 2.0]]], requires_grad=True)
    loss = feature_guidance(features, projected, primary=0)
    assert loss.item() == pytest.approx(1.25)
    loss.backward()
    # d/d projected[:, 1] = 2 (p - f_0) / 4 elements; the primary's own entry: none.
    torch.testing.assert_close(projected.grad, torch.tensor([[[0.0, 0.0], [0.5, -1.0], [0.0, 0.0]]]))
    assert features.grad is None  # features enter only as the primary's target, gradient stopped


def test_only_feature_guided_cmg_has_projections_and_its_branches_start_the_same(small_grading_config):
    torch.manual_seed(0)
    logit = build_task(small_grading_config).build_model()
    torch.manual_seed(0)
    feature = build_task({**small_grading_config, "guidance": "feature"}).build_model()
    late = build_task({**small_grading_config, "model": "late_fusion", "guidance": "feature"}).build_model()
    assert not hasattr(logit, "projections") and not hasattr(late, "projections")
    assert [p.shape for p in feature.projections.parameters()] == [(8, 8), (8,)] * len(MODALITIES)
    for name, value in logit.state_dict().items():
        torch.testing.assert_close(feature.state_dict()[name], value)


def test_the_feature_guided_phase_adds_the_weighted_feature_loss(small_grading_config, scenario):
    task = build_task({**small_grading_config, "guidance": "feature", "guidance_weight": 0.5})
    torch.manual_seed(0)
    net = task.build_model()
    batch = list(task.load_site(scenario.sites[0], seed=0).train.tensors)
    plain = task.batch_loss(net, batch, TrainConfig(phase="branches"))
    guided = task.batch_loss(net, batch, TrainConfig(phase="guided", entries={"primary-modality": "t2"}))
    features = net.branch_features(batch[0])
    expected = plain + 0.5 * feature_guidance(features, net.project(features), MODALITIES.index("t2"))
    torch.testing.assert_close(guided, expected)
    assert guided > plain


def test_the_guided_phase_adds_the_weighted_guidance_loss(small_grading_config, scenario):
    task = build_task({**small_grading_config, "guidance_weight": 0.5})
    torch.manual_seed(0)
    net = task.build_model()
    batch = list(task.load_site(scenario.sites[0], seed=0).train.tensors)
    plain = task.batch_loss(net, batch, TrainConfig(phase="branches"))
    guided = task.batch_loss(net, batch, TrainConfig(phase="guided", entries={"primary-modality": "flair"}))
    expected = plain + 0.5 * cross_modality_guidance(net.branch_logits(batch[0]), MODALITIES.index("flair"), 2.0)
    torch.testing.assert_close(guided, expected)


class _KnownBranches(nn.Module):
    """Branch logits that grade perfectly for one modality and say nothing for the others."""

    def __init__(self, best: int) -> None:
        super().__init__()
        self.best = best

    def branch_logits(self, volumes: torch.Tensor, grades: torch.Tensor | None = None) -> torch.Tensor:
        logits = torch.zeros(len(volumes), len(MODALITIES), 2)
        logits[:, self.best, 1] = 4.0 * (2 * self.grades - 1)
        return logits


@pytest.mark.parametrize("selection", ["auc", "nll"])
@pytest.mark.parametrize("best", range(len(MODALITIES)))
def test_the_primary_modality_is_the_branch_best_on_validation_data(small_grading_config, best, selection):
    task = build_task({**small_grading_config, "primary_selection": selection})
    grades = torch.tensor([0, 1, 1, 0, 1, 0])
    validation = TensorDataset(torch.zeros(6, 4, 4, 16, 16), grades)
    model = _KnownBranches(best)
    model.grades = grades
    counts = task.site_statistics(model, SiteData(train=validation, test=validation, validation=validation),
                                 StatisticsQuery(stage=1, phase="guided"))
    assert counts["validation-n"] == 6 and counts["validation-pairs"] == 9
    # The best branch orders all 9 pairs; the others score every case alike: 9 ties, 4.5.
    assert [counts[f"validation-concordant-{m}"] for m in MODALITIES] == [9.0 if i == best else 4.5
                                                                         for i in range(len(MODALITIES))]
    assert counts[f"validation-nll-{MODALITIES[best]}"] < min(
        counts[f"validation-nll-{m}"] for i, m in enumerate(MODALITIES) if i != best)
    totals = {k: 2 * v for k, v in counts.items()}  # as if two sites had reported the same
    assert task.phase_config("guided", totals) == {"primary-modality": MODALITIES[best]}
    pooled = task.pool_metrics({}, {"guided": totals})
    assert pooled[f"validation_auc_{MODALITIES[best]}"] == 1.0
    assert min((k for k in pooled if "nll" in k), key=pooled.get) == f"validation_nll_{MODALITIES[best]}"


def _totals(concordant: list[float], nll: list[float], pairs: float = 100.0, n: float = 20.0) -> dict[str, float]:
    return {"validation-pairs": pairs, "validation-n": n,
            **{f"validation-concordant-{m}": c for m, c in zip(MODALITIES, concordant)},
            **{f"validation-nll-{m}": x for m, x in zip(MODALITIES, nll)}}


def test_auc_selection_ranks_by_pooled_pairs_and_breaks_ties_by_cross_entropy(small_grading_config):
    task = build_task(small_grading_config)
    # t2 orders the most pairs (AUC 0.8) although flair has the lowest cross entropy.
    totals = _totals(concordant=[60, 70, 80, 75], nll=[14, 13, 12, 11])
    assert task.phase_config("guided", totals) == {"primary-modality": "t2"}
    assert task.pool_metrics({}, {"guided": totals})["validation_auc_t2"] == pytest.approx(0.8)
    assert task.pool_metrics({}, {"guided": totals})["validation_nll_flair"] == pytest.approx(11 / 20)
    nll_task = build_task({**small_grading_config, "primary_selection": "nll"})
    assert nll_task.phase_config("guided", totals) == {"primary-modality": "flair"}
    tied = _totals(concordant=[80, 80, 80, 75], nll=[14, 12, 13, 11])
    assert task.phase_config("guided", tied) == {"primary-modality": "t1ce"}


def test_concordant_pairs_count_correctly_ordered_pairs_and_half_the_ties():
    grades = torch.tensor([1, 1, 1, 0, 0])
    # Of the 6 (HGG, LGG) pairs only (0.2, 0.6) is misordered.
    assert concordant_pairs(torch.tensor([0.9, 0.7, 0.2, 0.6, 0.1]), grades) == 5.0
    # Pairs (0.6, 0.6) and (0.1, 0.1) tie; (0.1, 0.6) is misordered; 3 ordered + 2 halves.
    assert concordant_pairs(torch.tensor([0.9, 0.6, 0.1, 0.6, 0.1]), grades) == 4.0


# --- metrics -----------------------------------------------------------------------------------

class _Fixed(nn.Module):
    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.scores = torch.tensor(scores)

    def forward(self, volumes: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.zeros_like(self.scores), torch.logit(self.scores)], dim=1)


def test_metrics_at_probability_one_half(small_grading_config):
    task = build_task({**small_grading_config, "model": "early_fusion"})
    grades = torch.tensor([1, 1, 1, 0, 0])
    scores = [0.9, 0.7, 0.2, 0.6, 0.1]  # TP, TP, FN, FP, TN
    metrics = task.evaluate(_Fixed(scores), TensorDataset(torch.zeros(5, 4, 4, 16, 16), grades))
    assert metrics["sensitivity"] == pytest.approx(2 / 3)
    assert metrics["specificity"] == pytest.approx(1 / 2)
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["auc"] == pytest.approx(5 / 6)  # of 6 (HGG, LGG) pairs only (0.2, 0.6) is misranked


def test_multi_branch_models_also_report_each_branch_auc(small_grading_config, scenario):
    task = build_task({**small_grading_config, "model": "late_fusion"})
    metrics = task.evaluate(task.build_model(), task.load_site(scenario.sites[0], seed=0).test)
    assert {"auc", "accuracy", "sensitivity", "specificity"} | {f"auc-{m}" for m in MODALITIES} <= set(metrics)


def test_replay_keeps_each_volume_whole_with_its_sequences_as_channels(small_grading_config, scenario):
    task = build_task(small_grading_config)
    volumes, grades = task.load_site(scenario.sites[1], seed=0).train.tensors
    x, classes = task.encode_replay(TensorDataset(volumes, grades))
    assert task.replay_shape == (4, 4, 16, 16) and x.shape == (16, *task.replay_shape) and x.abs().max() <= 1
    decoded, decoded_grades = task.decode_replay(x, classes).tensors
    scale = REPLAY_INTENSITY_SCALE
    torch.testing.assert_close(decoded, volumes.clamp(-scale, scale))
    assert torch.equal(decoded_grades, grades)
