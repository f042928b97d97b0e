"""What a withdrawal spends of the sites' DP budget (server/withdrawal_privacy.py), and what the
privacy audit says of it."""

import json

import pytest
from opacus.accountants import RDPAccountant

from server.privacy_audit import audit_result
from server.records import BeforeAfter, SiteSpend, UnlearningSpend, WithdrawalPrivacy, WithdrawalRecord
from server.withdrawal_privacy import privacy_record, unlearning_spent
from sites.protocol import AttackResult, AuditReply, Interval, RocSummary


def _epsilon(steps: int) -> float:
    accountant = RDPAccountant()
    accountant.history = [(1.0, 0.5, steps)]
    return accountant.get_epsilon(1e-5)


def _history(steps: int) -> str:
    return json.dumps([[1.0, 0.5, steps]])


def _withdrawal(site: str, stage: int, method: str, privacy: WithdrawalPrivacy | None = None) -> WithdrawalRecord:
    """A withdrawal record with what the privacy audit reads of it."""
    return WithdrawalRecord(site, stage, "privacy", method, "dice", {}, {}, {}, None, 1.0, 2.0, 0.5, {}, privacy)


@pytest.fixture
def record() -> WithdrawalPrivacy:
    """B withdraws after training 2 steps and unlearns in 20 more; A's accountant is unchanged;
    C has never taken a DP-SGD step."""
    before = {"A": _history(2), "B": _history(2)}
    after = {"A": _history(2), "B": _history(22)}
    return privacy_record({"B": "forget", "A": "retain", "C": "retain"}, before, after, 1e-5)


def test_the_record_gives_each_sites_steps_and_epsilon_before_and_after(record):
    assert record.delta == 1e-5
    assert list(record.sites) == ["B", "A", "C"]
    b = record.sites["B"]
    assert (b.role, b.steps) == ("forget", BeforeAfter(2, 22))
    assert (b.epsilon.before, b.epsilon.after) == pytest.approx((_epsilon(2), _epsilon(22)))
    assert b.epsilon.after > b.epsilon.before
    a = record.sites["A"].epsilon
    assert (a.before, a.after) == pytest.approx((_epsilon(2), _epsilon(2)))
    assert record.sites["C"] == SiteSpend("retain", BeforeAfter(0, 0), BeforeAfter(0.0, 0.0))


def test_only_withdrawals_that_took_steps_at_a_site_count_as_spent_there(record):
    withdrawals = [_withdrawal("B", 2, "npo", record), _withdrawal("D", 3, "ga")]  # the second without DP
    (spent,) = unlearning_spent(withdrawals, "B")
    assert spent == UnlearningSpend("B", 2, "npo", 20, record.sites["B"].epsilon)
    assert unlearning_spent(withdrawals, "A") == [] and unlearning_spent(withdrawals, "D") == []


def test_the_audit_says_what_unlearning_spent_at_a_site(record):
    tpr = Interval(0.0, 0.0, 0.37)
    attacks = {"loss": AttackResult(RocSummary(Interval(0.5, 0.2, 0.8), {"1pct": tpr, "0.1pct": tpr}, 0.0, []))}
    withdrawals = [_withdrawal("B", 2, "npo", record)]
    replies = {site: AuditReply(8, 8, 1 / 8, _epsilon(steps), attacks) for site, steps in (("A", 2), ("B", 22))}
    audit = audit_result(replies, 1e-5, withdrawals)
    assert audit.sites["B"].unlearning == unlearning_spent(withdrawals, "B")
    explanation = audit.sites["B"].verdict.explanation
    assert (f"It includes the 20 DP-SGD steps the site took to unlearn site B after stage 2 (npo), which took its "
            f"epsilon from {_epsilon(2):.2f} to {_epsilon(22):.2f}.") in explanation
    written = audit.to_dict()["sites"]
    assert written["B"]["unlearning"] == [{"withdrawn": "B", "stage": 2, "method": "npo", "steps": 20,
                                           "epsilon": {"before": _epsilon(2), "after": _epsilon(22)}}]
    assert "unlearning" not in written["A"] and "unlearn" not in written["A"]["verdict"]["explanation"]
