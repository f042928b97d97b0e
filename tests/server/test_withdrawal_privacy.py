"""What a withdrawal spends of the sites' DP budget (server/withdrawal_privacy.py), and what the
privacy audit says of it."""

import json

import pytest
from opacus.accountants import RDPAccountant

from server.privacy_audit import audit_result
from server.withdrawal_privacy import privacy_record, unlearning_spent


def _epsilon(steps: int) -> float:
    accountant = RDPAccountant()
    accountant.history = [(1.0, 0.5, steps)]
    return accountant.get_epsilon(1e-5)


def _history(steps: int) -> str:
    return json.dumps([[1.0, 0.5, steps]])


@pytest.fixture
def record() -> dict:
    """B withdraws after training 2 steps and unlearns in 20 more; A's accountant is unchanged;
    C has never taken a DP-SGD step."""
    before = {"A": _history(2), "B": _history(2)}
    after = {"A": _history(2), "B": _history(22)}
    return privacy_record({"B": "forget", "A": "retain", "C": "retain"}, before, after, 1e-5)


def test_the_record_gives_each_sites_steps_and_epsilon_before_and_after(record):
    assert record["delta"] == 1e-5
    assert list(record["sites"]) == ["B", "A", "C"]
    b = record["sites"]["B"]
    assert (b["role"], b["steps"]) == ("forget", {"before": 2, "after": 22})
    assert b["epsilon"] == pytest.approx({"before": _epsilon(2), "after": _epsilon(22)})
    assert b["epsilon"]["after"] > b["epsilon"]["before"]
    assert record["sites"]["A"]["epsilon"] == pytest.approx({"before": _epsilon(2), "after": _epsilon(2)})
    assert record["sites"]["C"] == {"role": "retain", "steps": {"before": 0, "after": 0},
                                    "epsilon": {"before": 0.0, "after": 0.0}}


def test_only_withdrawals_that_took_steps_at_a_site_count_as_spent_there(record):
    withdrawals = [{"site": "B", "stage": 2, "method": "npo", "privacy": record},
                   {"site": "D", "stage": 3, "method": "ga"}]  # a record without DP
    (spent,) = unlearning_spent(withdrawals, "B")
    assert spent == {"withdrawn": "B", "stage": 2, "method": "npo", "steps": 20,
                     "epsilon": record["sites"]["B"]["epsilon"]}
    assert unlearning_spent(withdrawals, "A") == [] and unlearning_spent(withdrawals, "D") == []


def test_the_audit_says_what_unlearning_spent_at_a_site(record):
    metrics = {"loss-auc": 0.5, "loss-auc-ci-low": 0.2, "loss-auc-ci-high": 0.8, "loss-tpr-at-1pct-fpr": 0.0,
               "loss-tpr-at-1pct-fpr-ci-low": 0.0, "loss-tpr-at-1pct-fpr-ci-high": 0.37, "n-members": 8,
               "n-non-members": 8}
    withdrawals = [{"site": "B", "stage": 2, "method": "npo", "privacy": record}]
    audit = audit_result({"A": {**metrics, "epsilon": _epsilon(2)}, "B": {**metrics, "epsilon": _epsilon(22)}}, 1e-5,
                         withdrawals)
    assert audit["sites"]["B"]["unlearning"] == unlearning_spent(withdrawals, "B")
    explanation = audit["sites"]["B"]["verdict"]["explanation"]
    assert (f"It includes the 20 DP-SGD steps the site took to unlearn site B after stage 2 (npo), which took its "
            f"epsilon from {_epsilon(2):.2f} to {_epsilon(22):.2f}.") in explanation
    assert "unlearning" not in audit["sites"]["A"] and "unlearn" not in audit["sites"]["A"]["verdict"]["explanation"]
