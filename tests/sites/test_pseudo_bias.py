"""Youden-J thresholds, pseudo bias labels, the prior from federated counts, pooled AUCs."""

import math

import numpy as np
import pytest

from server.statistics import sum_counts
from sites.group_metrics import group_aucs, pooled_group_aucs, score_histograms
from sites.tasks import build_task
from sites.thresholds import (
    THRESHOLD_BINS,
    bin_centres,
    binned_scores,
    histogram_youden_threshold,
    score_bins,
    youden_threshold,
)


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


def test_histogram_threshold_hand_computed_is_the_pooled_one():
    # ten bins of 0.1; counts per bin: site A positives in bins 7 and 8, negatives in 2 and 7;
    # site B a positive in bin 5, a negative in bin 1.
    positives = {"A": np.eye(10)[7] + np.eye(10)[8], "B": np.eye(10)[5]}
    negatives = {"A": np.eye(10)[2] + np.eye(10)[7], "B": np.eye(10)[1]}
    # Pooled, at >= 0.85, 0.75, 0.55, 0.25: J = 1/3, 1/3, 2/3, 1/3 -> 0.55, halfway down to 0.25.
    pooled = histogram_youden_threshold(positives["A"] + positives["B"], negatives["A"] + negatives["B"])
    assert pooled == pytest.approx(0.40)
    # Site A alone: J = 1/2 at >= 0.85 and at >= 0.75; the tie goes to the higher, 0.80.
    assert histogram_youden_threshold(positives["A"], negatives["A"]) == pytest.approx(0.80)
    scores = np.array([0.75, 0.85, 0.55, 0.25, 0.75, 0.15])
    assert pooled == youden_threshold(scores, np.array([1, 1, 1, 0, 0, 0]))


def test_histogram_threshold_equals_the_threshold_of_pooled_scores_on_the_bin_grid():
    rng = np.random.default_rng(0)
    for _ in range(50):
        sites = []
        for _ in range(3):
            labels = rng.integers(0, 2, 40)
            sites.append((rng.beta(1 + 3 * labels, 2, 40), labels))  # label 1 scores higher, overlapping

        def histogram(label):
            return sum(np.bincount(score_bins(s[y == label]), minlength=THRESHOLD_BINS) for s, y in sites)

        scores, labels = np.concatenate([s for s, _ in sites]), np.concatenate([y for _, y in sites])
        threshold = histogram_youden_threshold(histogram(1), histogram(0))
        assert threshold == youden_threshold(binned_scores(scores), labels)


def test_score_bins_cover_the_unit_interval():
    assert score_bins(np.array([0.0, 0.004, 0.01, 0.999, 1.0])).tolist() == [0, 0, 1, 99, 99]
    assert binned_scores(np.array([0.0, 1.0])) == pytest.approx([0.005, 0.995])
    assert bin_centres(4) == pytest.approx([0.125, 0.375, 0.625, 0.875])


def test_histogram_threshold_needs_both_labels():
    with pytest.raises(ValueError, match="both labels"):
        histogram_youden_threshold(np.ones(THRESHOLD_BINS), np.zeros(THRESHOLD_BINS))


def _histograms(site_bias, labels, probability):
    """A site's histogram statistics (``p-<name>-<bin>``) of bias-model probabilities."""
    bins, bias = score_bins(probability), np.full(len(labels), site_bias)
    members = {"y0": labels == 0, "y1": labels == 1, "b0": bias == 0, "b1": bias == 1}
    return {f"p-{name}-{k:03d}": float(c) for name, member in members.items()
            for k, c in enumerate(np.bincount(bins[member], minlength=THRESHOLD_BINS))}


def test_federation_threshold_recovers_sources_that_are_constant_within_sites(small_debiasing_config):
    """The federated arrangement: site A is source 1 with 9 positives in 10, site B source 0 with
    1 in 10; a bias model that learnt the sources but not the opacity scores A's images 0.8 or
    0.9 and B's 0.1 or 0.2, whatever their label. Against the target label, B's own Youden point
    calls all of B source 1; the summed histograms' point splits the sources."""
    task = build_task({**small_debiasing_config, "method": "pbbl", "arrangement": "federated"})
    labels_a, probability_a = np.array([1] * 9 + [0]), np.array([0.9] * 5 + [0.8] * 4 + [0.9])
    labels_b, probability_b = np.array([1] + [0] * 9), np.array([0.1] + [0.1] * 5 + [0.2] * 4)
    assert (probability_b > youden_threshold(probability_b, labels_b)).all()
    totals = sum_counts([_histograms(1, labels_a, probability_a), _histograms(0, labels_b, probability_b)])
    entries = task.phase_config("debias", totals)
    # pooled, at >= 0.9, 0.8, 0.2, 0.1: J = 0.4, 0.8, 0.4, 0 -> halfway between the bins of
    # 0.8 and 0.2, whose centres are 0.805 and 0.205
    assert entries["pseudo-threshold"] == pytest.approx(0.505)
    # pseudo bias = source, so the prior is the true one: b=0 row (9, 1) + 1, b=1 row (1, 9) + 1
    assert np.exp(entries["log-prior"]) == pytest.approx([10 / 12, 2 / 12, 2 / 12, 10 / 12])
    assert task.pool_metrics({}, {"debias": totals})["pseudo_label_accuracy"] == 1.0


def test_federated_counts_are_summed_and_give_the_prior(small_debiasing_config):
    site_a = {"n-b0-y0": 40.0, "n-b0-y1": 2.0, "n-b1-y0": 3.0, "n-b1-y1": 35.0,
              "pseudo-known": 80.0, "pseudo-correct": 78.0}
    site_b = {"n-b0-y0": 10.0, "n-b0-y1": 0.0, "n-b1-y0": 1.0, "n-b1-y1": 12.0,
              "pseudo-known": 23.0, "pseudo-correct": 20.0}
    totals = sum_counts([site_a, site_b])
    assert totals["n-b0-y0"] == 50 and totals["n-b1-y1"] == 47 and totals["pseudo-correct"] == 98
    site_threshold = build_task({**small_debiasing_config, "method": "pbbl", "pseudo_threshold": "site"})
    prior = np.array(site_threshold.phase_config("debias", totals)["log-prior"]).reshape(2, 2)
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
