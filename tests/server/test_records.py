"""The typed records of a run's files (server/records.py): each writes the keys the files have
always held, in their order, and reads back what it wrote."""

import json

from server.records import (
    AuditRecord,
    BeforeAfter,
    Failure,
    ReplayRecord,
    SiteAudit,
    SiteSpend,
    UnlearningSpend,
    Verdict,
    WithdrawalPrivacy,
    WithdrawalRecord,
)
from server.run_log import Event
from sites.protocol import AttackResult, AuditReply, Interval, RocSummary


def _round_trip(record):
    return type(record).from_dict(json.loads(json.dumps(record.to_dict())))


def test_a_failure_reads_back_and_logs_under_its_event():
    failure = Failure(2, 3, "B", "train", "the site went down")
    assert list(failure.to_dict()) == ["stage", "round", "site", "message", "reason"]
    assert _round_trip(failure) == failure
    assert json.dumps({"event": Event.FAILURE}) == '{"event": "failure"}'


def _withdrawal(privacy=None) -> WithdrawalRecord:
    performance = {model: {"forget": 0.5, "retain": 0.8, "test": None} for model in ("before", "after", "oracle")}
    return WithdrawalRecord("B", 2, "privacy", "npo", "dice", {"forget": ["B"], "retain": ["A"], "test": ["A"]},
                            performance, {model: {"forget": {"B": 0.5}} for model in performance}, None, 1.5, 30.0,
                            0.05, {"before": 0.8, "after": 0.5, "oracle": 0.45}, privacy)


def test_a_withdrawal_record_keeps_the_files_keys_and_reads_back():
    record = _withdrawal()
    assert list(record.to_dict()) == ["site", "stage", "reason", "method", "metric", "subsets", "performance",
                                      "per_site", "scores", "seconds", "retrain_seconds", "cost_ratio",
                                      "mia_forget_auc"]  # no privacy without DP
    assert _round_trip(record) == record
    spend = SiteSpend("forget", BeforeAfter(2, 22), BeforeAfter(1.0, 3.0))
    private = _withdrawal(WithdrawalPrivacy(1e-5, {"B": spend}))
    assert private.to_dict()["privacy"] == {"delta": 1e-5, "sites": {"B": {
        "role": "forget", "steps": {"before": 2, "after": 22}, "epsilon": {"before": 1.0, "after": 3.0}}}}
    assert _round_trip(private) == private


def test_an_audit_record_writes_each_sites_reply_then_what_unlearning_spent_then_the_verdict():
    rate = Interval(0.1, 0.0, 0.3)
    reply = AuditReply(16, 16, 1 / 16, 2.0, {"loss": AttackResult(RocSummary(Interval(0.6, 0.5, 0.7),
                                                                             {"1pct": rate, "0.1pct": rate}, 0.2,
                                                                             [0.1, 1.0]))})
    spent = UnlearningSpend("B", 2, "npo", 20, BeforeAfter(1.0, 3.0))
    audit = AuditRecord(1e-5, [0.001, 1.0], ["low", "moderate", "high", "inconclusive"],
                        {"A": SiteAudit(reply, Verdict("moderate", "why"), [spent])}, {"covered": ["x"], "outside": []})
    written = audit.to_dict()
    assert list(written) == ["delta", "fpr_grid", "levels", "dp_scope", "sites"]
    site = written["sites"]["A"]
    assert list(site)[:4] == ["n-members", "n-non-members", "min-resolvable-fpr", "epsilon"]
    assert list(site)[-2:] == ["unlearning", "verdict"] and site["loss-auc-ci-low"] == 0.5
    assert _round_trip(audit) == audit


def test_a_replay_record_writes_the_sources_figures_then_the_fidelity():
    record = ReplayRecord("smd", True, {"generator_parameters": 10, "samples_per_draw": 4})
    assert list(record.to_dict()) == ["source", "private", "generator_parameters", "samples_per_draw"]
    measured = ReplayRecord("smd", True, {"generator_parameters": 10}, {"chance": {"site": 0.5}})
    assert list(measured.to_dict())[-1] == "fidelity"
    assert _round_trip(measured) == measured and _round_trip(record) == record
