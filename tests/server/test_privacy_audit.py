"""The privacy audit scenario end to end, its report in a real headless browser, the judge."""

import json
import re
import shutil
import subprocess

import pytest
from conftest import assert_only_declared_content_left_the_sites, read_json, run_cli

from server.privacy_audit import AuditConfig, dp_scope, judge, level
from sites.config import parse
from sites.errors import ConfigError
from sites.protocol import AttackResult, AuditReply, Interval, RocSummary

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def audited_run(tmp_path_factory, ray_head):
    run_dir = tmp_path_factory.mktemp("audit") / "run"
    completed = run_cli("size=smoke", "scenario=privacy_audit", "privacy=dp", f"hydra.run.dir={run_dir}",
                        ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr
    return run_dir


@pytest.mark.e2e
def test_the_audit_covers_every_site_that_trained_with_both_attacks_and_its_epsilon(audited_run):
    audit = read_json(audited_run / "privacy_audit.json")
    assert audit["delta"] == 1e-5 and len(audit["fpr_grid"]) == 31
    assert set(audit["sites"]) == {"A", "B", "C", "D"}  # E never trained: it has no members
    for metrics in audit["sites"].values():
        assert 0 < metrics["epsilon"] <= 8.0
        for attack in ("loss", "reference"):
            assert 0 <= metrics[f"{attack}-auc"] <= 1 and len(metrics[f"{attack}-roc"]) == 31
            assert metrics[f"{attack}-auc-ci-low"] <= metrics[f"{attack}-auc"] <= metrics[f"{attack}-auc-ci-high"]
            low, high = metrics[f"{attack}-tpr-at-1pct-fpr-ci-low"], metrics[f"{attack}-tpr-at-1pct-fpr-ci-high"]
            assert low <= metrics[f"{attack}-tpr-at-1pct-fpr"] <= high
        assert metrics["n-members"] == metrics["n-non-members"] == 16 and metrics["min-resolvable-fpr"] == 1 / 16
        # 16 non-members cannot resolve 1 % FPR: never low, and the verdict says so
        assert metrics["verdict"]["level"] in {"moderate", "high", "inconclusive"}
        explanation = metrics["verdict"]["explanation"]
        assert "1 % false alarms cannot be resolved with 16 non-members" in explanation
        assert "differential privacy: epsilon" in explanation and "It does not cover" in explanation
    # the default task has no phase statistics, the scenario no withdrawal
    assert audit["dp_scope"] == dp_scope("withhold", phase_statistics=False, withdrawals=False)
    # privacy.train_metrics defaults to withhold: training replies carry no loss
    trains = [e for e in map(json.loads, (audited_run / "metrics.jsonl").read_text().splitlines())
              if e["event"] == "train"]
    assert trains and all(set(e["metrics"]) == {"num-examples", "epsilon"} for e in trains)
    assert_only_declared_content_left_the_sites(audited_run)


@pytest.mark.e2e
def test_the_run_report_links_the_audit_and_the_markdown_lists_every_site(audited_run):
    assert 'href="privacy_audit.html"' in (audited_run / "report.html").read_text()
    text = (audited_run / "privacy_audit.md").read_text()
    assert all(f"| {site} |" in text for site in "ABCD")
    assert (audited_run / "privacy_audit_roc.png").stat().st_size > 10_000


@pytest.mark.e2e
def test_the_audit_page_renders_its_figure_and_numbers_in_chromium(audited_run, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "Chromium is needed for this test: `apt-get install chromium` (.ci/run installs it)"
    page = audited_run / "privacy_audit.html"
    dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-figures-rendered="1"' in body and 'data-rows-rendered="4"' in body
    audit = read_json(audited_run / "privacy_audit.json")
    for site, metrics in audit["sites"].items():
        assert f"<td>{site}</td><td>{metrics['epsilon']:.3f}</td>" in dom
        assert f"<td>{metrics['loss-auc']:.3f} [{metrics['loss-auc-ci-low']:.3f}, " in dom


def _summary(auc, tpr=(0.0, 0.0, 0.1)) -> RocSummary:
    """An attack's ROC summary with this AUC and TPR at both low FPRs, each a (value, CI low, CI high)."""
    return RocSummary(Interval(*auc), {"1pct": Interval(*tpr), "0.1pct": Interval(*tpr)}, 0.0, [])


def _metrics(auc, tpr=(0.0, 0.0, 0.1), n=16, reference=None, marked=None, epsilon=None) -> AuditReply:
    """A site's audit reply: each figure a (value, CI low, CI high); ``n`` members and as many non-members."""
    attacks = {"loss": AttackResult(_summary(auc, tpr), *(_summary(group) for group in marked or ()))}
    if reference:
        attacks["reference"] = AttackResult(_summary(*reference))
    return AuditReply(n, n, 1 / n, epsilon, attacks, n_marked_members=4.0 if marked else None)


@pytest.mark.parametrize(("auc", "tpr", "n", "verdict"), [
    ((0.46, 0.26, 0.66), (0.06, 0.0, 0.3), 16, "inconclusive"),  # a smoke-sized site: spans chance and 0.55
    ((0.52, 0.42, 0.62), (0.01, 0.0, 0.02), 400, "inconclusive"),  # resolved, but the AUC may reach 0.62
    ((0.60, 0.52, 0.68), (0.06, 0.0, 0.3), 16, "moderate"),  # above chance, not shown to reach 0.65
    ((0.80, 0.66, 0.94), (0.06, 0.0, 0.3), 16, "high"),  # at least 0.65
    ((0.52, 0.42, 0.62), (0.25, 0.16, 0.36), 16, "inconclusive"),  # 1 % FPR unresolved: the TPR is not used
    ((0.52, 0.42, 0.62), (0.25, 0.16, 0.36), 200, "high"),  # resolved: at least 16 % at 1 % FPR
    ((0.50, 0.46, 0.54), (0.01, 0.003, 0.03), 400, "low"),  # both intervals below the low bounds
    ((0.50, 0.46, 0.54), (0.01, 0.003, 0.03), 99, "inconclusive"),  # 99 non-members cannot resolve 1 %
    ((0.50, 0.46, 0.54), (0.04, 0.02, 0.07), 400, "inconclusive"),  # the TPR may reach 7 %
    ((0.30, 0.20, 0.40), (0.0, 0.0, 0.01), 400, "low"),  # worse than chance is never better than it
])
def test_the_verdict_claims_only_what_the_intervals_support(auc, tpr, n, verdict):
    assert level(_metrics(auc, tpr, n)) == verdict


def test_any_attack_can_show_exposure_but_low_needs_every_attack():
    spans = ((0.52, 0.42, 0.62), (0.0, 0.0, 0.1))
    assert level(_metrics(*spans, reference=((0.6, 0.53, 0.67), (0.0, 0.0, 0.1)))) == "moderate"
    quiet = ((0.50, 0.46, 0.54), (0.01, 0.003, 0.03))
    assert level(_metrics(*quiet, n=400, reference=((0.52, 0.48, 0.56), (0.01, 0.003, 0.03)))) == "inconclusive"


def test_an_inconclusive_verdict_says_why_and_never_calls_the_attack_better_than_chance():
    explanation = judge(_metrics((0.46, 0.26, 0.66), (0.06, 0.0, 0.3))).explanation
    assert "better than chance" not in explanation and "cannot tell" in explanation
    assert "AUC is 0.46 (95 % CI 0.26-0.66)" in explanation
    assert "1 % false alarms cannot be resolved with 16 non-members" in explanation and "6.2%" in explanation
    resolved = judge(_metrics((0.30, 0.20, 0.40), (0.0, 0.0, 0.01), n=400)).explanation
    assert "finds 0% of them (95 % CI 0%-1%)" in resolved and "worse than chance" in resolved


def test_the_verdict_says_when_markers_expose_patients_and_what_dp_guarantees():
    exposed = judge(_metrics((0.6, 0.52, 0.68), marked=((0.8, 0.7, 0.9), (0.55, 0.45, 0.65)), epsilon=2.0))
    assert "more exposed (AUC 0.80 (95 % CI 0.70-0.90) vs 0.55 (0.45-0.65)" in exposed.explanation
    assert "epsilon 2.00" in exposed.explanation
    overlapping = judge(_metrics((0.6, 0.52, 0.68), marked=((0.8, 0.5, 1.0), (0.55, 0.45, 0.65)))).explanation
    assert "not measurably more exposed" in overlapping and "no formal bound" in overlapping


@pytest.mark.parametrize(("train_metrics", "covered", "outside"), [
    ("release", [], ["the mean training loss of every training call (train_loss)"]),
    ("noise", ["the training losses it reported"], []),
    ("withhold", [], []),
])
def test_the_dp_sentence_says_what_epsilon_covers_and_what_left_outside_it(train_metrics, covered, outside):
    scope = dp_scope(train_metrics, phase_statistics=True, withdrawals=False)
    explanation = judge(_metrics((0.6, 0.52, 0.68), epsilon=2.0), scope=scope).explanation
    assert "epsilon 2.00 bounds what an attack can learn from the model updates it sent from DP-SGD training" \
        in explanation
    covers, leaves = explanation.split("It does not cover")
    assert all(item in covers for item in covered) and all(item in leaves for item in outside)
    assert "PBBL's label x pseudo-bias counts" in leaves and "this audit's ROC summaries" in leaves
    assert ("train_loss" in leaves) == (train_metrics == "release")
    assert "unlearning" not in explanation  # no withdrawals


def test_lira_needs_two_reference_models_and_a_known_attack():
    with pytest.raises(ConfigError) as raised:
        parse(AuditConfig, {"attack": "lira", "reference_models": 1}, "scenario.audit")
    assert raised.value.key == "scenario.audit.reference_models" and "at least 2" in str(raised.value)
    with pytest.raises(ConfigError) as raised:
        parse(AuditConfig, {"attack": "lra"}, "scenario.audit")
    assert raised.value.key == "scenario.audit.attack"
    assert parse(AuditConfig, {"attack": "lira", "reference_models": 4}, "scenario.audit").attack == "lira"
