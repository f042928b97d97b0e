"""Youden-J thresholds, pseudo bias labels, the prior from federated counts, pooled AUCs."""

import math

import numpy as np
import pytest

from server.statistics import sum_counts
from sites.group_metrics import group_aucs, pooled_group_aucs, score_histograms
from sites.thresholds import youden_threshold


def test_youden_threshold_hand_computed():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.2])
    labels = np.array([0, 0, 1, 1, 1, 0])
    # At >= 0.35: TPR 1, FPR 1/3 -> J 2/3; at >= 0.7: TPR 2/3, FPR 0 -> J 2/3; tie: the higher wins.
    threshold = youden_threshold(scores, labels)
    assert threshold == pytest.approx((0.7 + 0.4) / 2)
    assert ((scores > threshold) == np.array([0, 0, 0, 1, 1, 0], bool)).all()


def test_youden_threshold_separates_perfectly_separable_scores():
    scores, labels = np.array([0.1, 0.2, 0.6, 0.9]), np.array([0, 0, 1, 1])
    assert 0.2 < youden_threshold(scores, labels) < 0.6


def test_youden_threshold_needs_both_labels():
    with pytest.raises(ValueError, match="both labels"):
        youden_threshold(np.array([0.1, 0.2]), np.array([1, 1]))


def test_federated_counts_are_summed_and_give_the_prior(small_debiasing_task):
    site_a = {"n-b0-y0": 40.0, "n-b0-y1": 2.0, "n-b1-y0": 3.0, "n-b1-y1": 35.0, "pseudo-known": 80.0, "pseudo-correct": 78.0}
    site_b = {"n-b0-y0": 10.0, "n-b0-y1": 0.0, "n-b1-y0": 1.0, "n-b1-y1": 12.0, "pseudo-known": 23.0, "pseudo-correct": 20.0}
    totals = sum_counts([site_a, site_b])
    assert totals["n-b0-y0"] == 50 and totals["n-b1-y1"] == 47 and totals["pseudo-correct"] == 98
    prior = np.array(small_debiasing_task.phase_config("debias", totals)["log-prior"]).reshape(2, 2)
    # add-one smoothing: b=0 row is (51, 3) / 54, b=1 row is (5, 48) / 53
    assert prior[0] == pytest.approx([math.log(51 / 54), math.log(3 / 54)])
    assert prior[1] == pytest.approx([math.log(5 / 53), math.log(48 / 53)])


def test_sites_with_different_count_keys_are_refused():
    with pytest.raises(ValueError, match="different count keys"):
        sum_counts([{"a": 1.0}, {"b": 1.0}])


def test_group_aucs_and_their_pooled_form_from_histograms():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 0, 1, 1], 50)
    bias = np.tile(np.repeat([0, 1], 50), 2)
    # a biased scorer: follows the bias far more than the label
    scores = np.clip(0.2 + 0.5 * bias + 0.15 * labels + rng.normal(0, 0.05, 200), 0, 1)
    direct = group_aucs(scores, labels, bias)
    assert direct["aligned_auc"] > 0.95 and direct["conflicting_auc"] < 0.05
    halves = [score_histograms(scores[i::2], labels[i::2], bias[i::2]) for i in (0, 1)]
    pooled = pooled_group_aucs(halves)
    for key in ("aligned_auc", "conflicting_auc", "balanced_auc"):
        assert pooled[key] == pytest.approx(direct[key], abs=0.02)


def test_group_aucs_skip_subsets_with_one_class():
    # one bias value per site (federated arrangement): aligned holds only label 1
    metrics = group_aucs(np.array([0.2, 0.8, 0.6]), np.array([0, 1, 1]), np.array([1, 1, 1]))
    assert metrics == {}
