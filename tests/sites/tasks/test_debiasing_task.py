"""The debiasing task: data arrangements, phases per method, pseudo labels, metrics, errors."""

import numpy as np
import pytest
import torch
from conftest import task_config_error

from sites.protocol import StatisticsQuery, TrainConfig
from sites.spec import ScannerSignature, SiteSpec
from sites.tasks import build_task

SITES = [SiteSpec(id=s, name=s, index=i, scanner=ScannerSignature(contrast=0.3)) for i, s in enumerate("AB")]
DEBIAS_QUERY = StatisticsQuery(stage=1, phase="debias")


def _groups(dataset):
    labels, bias = dataset.tensors[1].numpy(), dataset.tensors[2].numpy()
    return {(y, b): int(((labels == y) & (bias == b)).sum()) for y in (0, 1) for b in (0, 1)}


def test_source_biased_sites_hold_two_sources_at_the_ratio(small_debiasing_config):
    task = build_task({**small_debiasing_config, "n_train": 40, "bias_ratio": 0.9})
    data = task.load_site(SITES[0], seed=0)
    groups = _groups(data.train)
    assert groups[(0, 0)] + groups[(1, 1)] == 36 and groups[(0, 1)] + groups[(1, 0)] == 4
    assert len(set(_groups(data.test).values())) == 1  # the four test groups are equal
    assert data.train.tensors[0].shape == (40, 1, 32, 32)


def test_federated_sites_are_sources_with_opposite_label_skews(small_debiasing_config):
    task = build_task({**small_debiasing_config, "arrangement": "federated", "n_train": 40, "bias_ratio": 0.9})
    assert task.primary_metric == "auc"
    a, b = (task.load_site(site, seed=0) for site in SITES)
    assert set(a.train.tensors[2].tolist()) == {1} and set(b.train.tensors[2].tolist()) == {0}
    assert a.train.tensors[1].float().mean() == pytest.approx(0.9)
    assert b.train.tensors[1].float().mean() == pytest.approx(0.1)
    assert a.test.tensors[1].float().mean() == pytest.approx(0.5)


def test_phases_per_method(small_debiasing_config):
    def phases(**changes):
        return [(p.name, p.statistics) for p in build_task({**small_debiasing_config, **changes}).phases]

    assert phases(method="erm") == [("train", False)]
    assert phases(method="pbbl", pseudo_label_repeats=2) == [("bias-0", False), ("bias-1", False), ("debias", True)]
    assert phases(method="bias_balanced_oracle") == [("debias", True)]
    # a later round's bias phase needs the federation threshold of the previous round's models
    assert phases(method="pbbl", pseudo_label_rounds=2) == [("bias-0", False), ("bias-1", True), ("debias", True)]
    assert phases(method="pbbl", pseudo_label_rounds=2, pseudo_threshold="site") == [
        ("bias-0", False), ("bias-1", False), ("debias", True)]


@pytest.mark.parametrize("threshold", ["federation", "site"])
def test_gce_bias_model_captures_the_source_as_pseudo_labels(small_debiasing_config, threshold):
    task = build_task({**small_debiasing_config, "method": "pbbl", "n_train": 64, "local_steps": 60,
                       "bias_ratio": 0.9, "lr": 0.003, "pseudo_threshold": threshold})
    data = task.load_site(SITES[0], seed=0)
    torch.manual_seed(0)
    model = task.build_model()
    main_before = [p.detach().clone() for p in model.main.parameters()]
    task.train(model, data.train, seed=0, config=TrainConfig(phase="bias-0"))
    # the bias phase left main alone
    assert all(torch.equal(a, b) for a, b in zip(main_before, model.main.parameters()))
    statistics = task.site_statistics(model, data, DEBIAS_QUERY)
    entries = task.phase_config("debias", statistics)
    groups = task.training_data(model, data.train, TrainConfig(phase="debias", entries=entries)).tensors[2]
    labels, bias = data.train.tensors[1], data.train.tensors[2]
    accuracy = (groups == bias).float().mean().item()
    assert accuracy > 0.85
    assert task.pool_metrics({}, {"debias": statistics})["pseudo_label_accuracy"] == pytest.approx(accuracy)
    # the prior the server sends is the one of the labels the site trains with
    counts = np.array([[((groups == b) & (labels == y)).sum().item() for y in (0, 1)] for b in (0, 1)]) + 1.0
    assert entries["log-prior"] == pytest.approx(np.log(counts / counts.sum(axis=1, keepdims=True)).ravel())


def test_later_rounds_train_bias_models_on_the_previous_pseudo_labels(small_debiasing_config):
    task = build_task({**small_debiasing_config, "method": "pbbl", "pseudo_label_rounds": 2})
    data = task.load_site(SITES[0], seed=0)
    model = task.build_model()
    assert len(model.bias) == 2
    first_round = task.site_statistics(model, data, StatisticsQuery(stage=1, phase="bias-1"))
    entries = task.phase_config("bias-1", first_round)
    targets = task.training_data(model, data.train, TrainConfig(phase="bias-1", entries=entries)).tensors[1]
    assert torch.equal(targets, task.pseudo_bias(model, data.train, range(0, 1), entries["pseudo-threshold"]))
    assert not torch.equal(targets, data.train.tensors[1])  # an untrained model's labels are not the targets
    # debias uses the last round's model: give model 1 model 0's weights and move model 0 away
    with torch.no_grad():
        model.bias[1].load_state_dict(model.bias[0].state_dict())
        for p in model.bias[0].parameters():
            p.add_(1.0)
    assert task.site_statistics(model, data, DEBIAS_QUERY) == first_round
    assert task.site_statistics(model, data, StatisticsQuery(stage=1, phase="bias-1")) != first_round


def test_oracle_counts_are_the_true_groups(small_debiasing_config):
    task = build_task({**small_debiasing_config, "method": "bias_balanced_oracle"})
    data = task.load_site(SITES[0], seed=0)
    counts = task.site_statistics(task.build_model(), data, DEBIAS_QUERY)
    truth = _groups(data.train)
    assert all(counts[f"n-b{b}-y{y}"] == truth[(y, b)] for y in (0, 1) for b in (0, 1))
    assert counts["pseudo-correct"] == counts["pseudo-known"]


def test_debias_phase_trains_the_main_model_with_the_prior(small_debiasing_config):
    task = build_task({**small_debiasing_config, "method": "bias_balanced_oracle"})
    data = task.load_site(SITES[0], seed=0)
    model = task.build_model()
    prior = task.phase_config("debias", task.site_statistics(model, data, DEBIAS_QUERY))
    config = TrainConfig(phase="debias", entries=prior)
    before = [p.detach().clone() for p in model.main.parameters()]
    assert np.isfinite(task.train(model, data.train, seed=0, config=config)["train_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.main.parameters()))


def test_evaluation_metrics_and_their_pooled_form(small_debiasing_task):
    data = small_debiasing_task.load_site(SITES[0], seed=0)
    metrics = small_debiasing_task.evaluate(small_debiasing_task.build_model(), data.test)
    assert {"auc", "aligned_auc", "conflicting_auc", "balanced_auc",
            "n-y1-b0", "correct-y1-b0", "hist-y0-b1"} <= set(metrics)
    assert metrics["balanced_auc"] == pytest.approx((metrics["aligned_auc"] + metrics["conflicting_auc"]) / 2)
    assert sum(metrics[f"n-y{y}-b{b}"] for y in (0, 1) for b in (0, 1)) == 16
    pooled = small_debiasing_task.pool_metrics({"A": metrics, "B": metrics}, {})
    assert pooled["balanced_auc"] == pytest.approx(metrics["balanced_auc"], abs=0.05)
    assert pooled["acc-y1-b0"] == metrics["correct-y1-b0"] / metrics["n-y1-b0"]


def test_federated_sites_report_the_same_metric_keys(small_debiasing_config):
    task = build_task({**small_debiasing_config, "arrangement": "federated"})
    keys = [set(task.evaluate(task.build_model(), task.load_site(site, seed=0).test)) for site in SITES]
    assert keys[0] == keys[1] and "aligned_auc" not in keys[0]


@pytest.mark.parametrize(
    ("changes", "key", "reason"),
    [({"method": "irm"}, "task.method", "must be 'erm', 'pbbl' or 'bias_balanced_oracle' (got 'irm')"),
     ({"arrangement": "mixed"}, "task.arrangement", "must be 'source_biased' or 'federated' (got 'mixed')"),
     ({"bias_ratio": 1.0}, "task.bias_ratio", "must be less than 1 (got 1.0)"),
     ({"q": 0}, "task.q", "must be greater than 0 (got 0)"),
     ({"pseudo_label_repeats": 0}, "task.pseudo_label_repeats", "must be greater than 0 (got 0)"),
     ({"source_shift": {"gamma": 1}}, "task.source_shift",
      "unknown scanner fields ['gamma'] (known: ['gain', 'offset', 'contrast', 'noise', 'blur', 'bias_field'])"),
     ({"source_shift": {"noise": "loud"}}, "task.source_shift.noise", "must be a valid number (got 'loud')"),
     ({"pseudo_threshold": "global"}, "task.pseudo_threshold", "must be 'federation' or 'site' (got 'global')"),
     ({"pseudo_label_rounds": 0}, "task.pseudo_label_rounds", "must be greater than 0 (got 0)")],
)
def test_bad_config_names_the_key(small_debiasing_config, changes, key, reason):
    assert task_config_error(small_debiasing_config, changes) == (key, reason)
