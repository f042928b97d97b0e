"""``privacy_audit.md`` / ``.html``: intervals, the resolvable FPR, the inconclusive verdict, what epsilon covers."""

import numpy as np

from server.privacy_audit import audit_result, dp_scope
from simulations.privacy_report import write_privacy_audit
from sites.membership_inference import roc_summary
from sites.protocol import AttackResult, AuditReply


def _site(n: int, shift: float, epsilon: float) -> AuditReply:
    rng = np.random.default_rng(0)
    members, non_members = rng.normal(shift, 1, n), rng.normal(0, 1, n)
    return AuditReply(n, n, 1 / n, epsilon, {"loss": AttackResult(roc_summary(members, non_members))})


def test_the_report_shows_intervals_unresolved_rates_and_the_inconclusive_verdict(tmp_path):
    sites = {"A": _site(16, 0.0, 1.5), "B": _site(400, 2.0, 2.5)}
    audit = audit_result(sites, 1e-5, scope=dp_scope("withhold", phase_statistics=False, withdrawals=False))
    assert audit.sites["A"].verdict.level == "inconclusive"
    assert audit.sites["B"].verdict.level == "high"
    write_privacy_audit(tmp_path, audit)
    text = (tmp_path / "privacy_audit.md").read_text()
    a = sites["A"].attacks["loss"].overall.auc
    row = next(line for line in text.splitlines() if line.startswith("| A |"))
    assert f"| 0.062 | {a.value:.3f} [{a.low:.3f}, {a.high:.3f}] |" in row
    assert row.count("not resolved") == 2 and row.endswith("| inconclusive |")
    b_row = next(line for line in text.splitlines() if line.startswith("| B |"))
    assert b_row.count("not resolved") == 1  # 400 non-members resolve 1 %, not 0.1 %
    assert "Epsilon covers: the model updates it sent from DP-SGD training." in text
    assert "Outside epsilon, each site released: its split sizes" in text and "train_loss" not in text
    page = (tmp_path / "privacy_audit.html").read_text()
    assert "<li class='inconclusive'><b>A</b> (inconclusive)" in page and "Epsilon covers" in page
