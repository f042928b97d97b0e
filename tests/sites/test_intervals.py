"""The audit's confidence intervals, against values computed by hand."""

import numpy as np
import pytest

from sites.intervals import (
    auc_interval,
    clopper_pearson,
    delong_auc,
    null_auc_variance,
    resolves,
    smallest_resolvable_fpr,
)


@pytest.mark.parametrize("n", [1, 16, 160])
def test_clopper_pearson_at_the_ends_has_a_closed_form(n):
    # 0 of n: the upper end solves (1 - p)^n = alpha / 2; n of n mirrors it
    assert clopper_pearson(0, n) == (0.0, pytest.approx(1 - 0.025 ** (1 / n)))
    assert clopper_pearson(n, n) == (pytest.approx(0.025 ** (1 / n)), 1.0)


def test_clopper_pearson_five_of_ten_and_its_symmetry():
    assert clopper_pearson(5, 10) == pytest.approx((0.187086, 0.812914), abs=1e-6)  # the textbook value
    low, high = clopper_pearson(3, 20, confidence=0.9)
    assert clopper_pearson(17, 20, confidence=0.9) == pytest.approx((1 - high, 1 - low))


def test_clopper_pearson_refuses_impossible_counts():
    with pytest.raises(ValueError, match="4 successes of 3"):
        clopper_pearson(4, 3)


def test_delong_by_hand():
    # members 3, 2, 1 against non-members 2.5, 0.5: V10 = (1, 1/2, 1/2), V01 = (1/3, 1)
    auc, variance = delong_auc(np.array([3.0, 2.0, 1.0]), np.array([2.5, 0.5]))
    assert auc == pytest.approx(2 / 3)
    assert variance == pytest.approx((1 / 12) / 3 + (2 / 9) / 2)  # var(V10) / m + var(V01) / n = 5/36


def test_delong_counts_ties_half():
    # members 1, 1 against non-members 1, 0: V10 = (3/4, 3/4), V01 = (1/2, 1)
    auc, variance = delong_auc(np.array([1.0, 1.0]), np.array([1.0, 0.0]))
    assert auc == 0.75 and variance == pytest.approx(0.125 / 2)


def test_auc_interval_is_normal_and_clipped_to_the_unit_interval():
    members, non_members = np.array([3.0, 2.0, 1.0]), np.array([2.5, 0.5])
    half = 0.6744898 * (5 / 36) ** 0.5  # the normal quantile of a 50 % interval; DeLong's 5/36 > the null's 6/72
    assert auc_interval(members, non_members, confidence=0.5) == pytest.approx((2 / 3 - half, 2 / 3 + half))
    assert auc_interval(members, non_members) == (0.0, 1.0)  # +-1.96 * 0.37 reaches past both ends


def test_a_perfect_separation_is_not_a_certainty():
    # DeLong's variance is 0; the null variance (10 + 10 + 1) / (12 * 10 * 10) takes its place
    assert null_auc_variance(10, 10) == pytest.approx(21 / 1200)
    assert delong_auc(np.arange(10.0, 20.0), np.arange(10.0)) == (1.0, 0.0)
    low, high = auc_interval(np.arange(10.0, 20.0), np.arange(10.0))
    assert (low, high) == (pytest.approx(1 - 1.959964 * (21 / 1200) ** 0.5), 1.0)
    # four marked patients against two, ranked the wrong way round: the interval still reaches chance
    assert auc_interval(np.zeros(4), np.ones(2))[1] > 0.5


def test_delong_needs_two_of_each():
    with pytest.raises(ValueError, match="2 scores of each class"):
        delong_auc(np.array([1.0]), np.array([0.0, 1.0]))


def test_a_target_fpr_needs_one_over_it_non_members():
    assert smallest_resolvable_fpr(16) == 1 / 16
    assert not resolves(0.01, 16) and not resolves(0.01, 99) and resolves(0.01, 100)
    assert resolves(0.001, 1000) and not resolves(0.001, 999)
