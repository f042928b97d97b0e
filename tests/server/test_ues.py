"""The Unlearning Efficiency Score on hand-computed cases (server/ues.py)."""

import pytest

from server.ues import forget_score, harmonic_mean, kept_score, unlearning_efficiency


def test_a_partial_unlearning_scores_by_hand():
    # s_F = 1 - |0.5 - 0.4| / |0.8 - 0.4| = 0.75; s_R = 0.6 / 0.8 = 0.75; s_T = min(1, 0.9 / 0.6) = 1
    scores = unlearning_efficiency(before={"forget": 0.8, "retain": 0.9, "test": 0.7},
                                   after={"forget": 0.5, "retain": 0.6, "test": 0.9},
                                   oracle={"forget": 0.4, "retain": 0.8, "test": 0.6})
    assert scores["s_F"] == pytest.approx(0.75)
    assert scores["s_R"] == pytest.approx(0.75)
    assert scores["s_T"] == pytest.approx(1.0)
    assert scores["UES"] == pytest.approx(3 / (1 / 0.75 + 1 / 0.75 + 1))


def test_the_oracle_itself_scores_one_and_doing_nothing_scores_zero():
    before, oracle = {"forget": 0.8, "retain": 0.7, "test": 0.6}, {"forget": 0.5, "retain": 0.75, "test": 0.65}
    assert unlearning_efficiency(before, oracle, oracle)["UES"] == pytest.approx(1.0)
    nothing = unlearning_efficiency(before, before, oracle)
    assert nothing["s_F"] == 0.0 and nothing["UES"] == 0.0


def test_forgetting_too_much_costs_like_forgetting_too_little():
    assert forget_score(before=0.8, after=0.3, oracle=0.5) == pytest.approx(forget_score(0.8, 0.7, 0.5))
    assert forget_score(before=0.8, after=0.0, oracle=0.5) == 0.0  # overshoot past the gap: clipped at 0


def test_forget_score_is_undefined_without_a_measurable_gap():
    assert forget_score(before=0.500, after=0.2, oracle=0.495) is None
    scores = unlearning_efficiency({"forget": 0.5, "retain": 1, "test": 1}, {"forget": 0.2, "retain": 1, "test": 1},
                                   {"forget": 0.495, "retain": 1, "test": 1})
    assert scores["s_F"] is None and scores["UES"] is None and scores["s_R"] == 1.0


def test_kept_scores_are_capped_ratios():
    assert kept_score(after=0.3, oracle=0.6) == pytest.approx(0.5)
    assert kept_score(after=0.9, oracle=0.6) == 1.0
    assert kept_score(after=-0.1, oracle=0.6) == 0.0
    assert kept_score(after=0.2, oracle=0.0) == 1.0


def test_harmonic_mean_by_hand():
    assert harmonic_mean([0.5, 1.0]) == pytest.approx(2 / 3)
    assert harmonic_mean([0.9, 0.0, 1.0]) == 0.0
