"""The privacy audit scenario end to end, its report in a real headless browser, the judge."""

import re
import shutil
import subprocess

import pytest

from conftest import assert_only_declared_content_left_the_sites, read_json, run_cli
from server.privacy_audit import judge

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
        assert metrics["n-members"] == metrics["n-non-members"] == 16
        assert metrics["verdict"]["level"] in {"low", "moderate", "high"}
        assert "differential privacy: epsilon" in metrics["verdict"]["explanation"]
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
        assert f"<td>{metrics['loss-auc']:.3f}</td>" in dom


def _metrics(loss_auc, tpr, marked=None, epsilon=None):
    metrics = {"loss-auc": loss_auc, "loss-tpr-at-1pct-fpr": tpr, "n-members": 100}
    if marked:
        metrics.update({"loss-marked-auc": marked[0], "loss-unmarked-auc": marked[1]})
    if epsilon is not None:
        metrics["epsilon"] = epsilon
    return metrics


@pytest.mark.parametrize(("loss_auc", "tpr", "level"), [(0.51, 0.01, "low"), (0.6, 0.02, "moderate"),
                                                         (0.52, 0.2, "high"), (0.8, 0.3, "high")])
def test_the_verdict_follows_the_strongest_signal(loss_auc, tpr, level):
    assert judge(_metrics(loss_auc, tpr))["level"] == level


def test_the_verdict_says_when_markers_expose_patients_and_what_dp_guarantees():
    exposed = judge(_metrics(0.6, 0.05, marked=(0.8, 0.55), epsilon=2.0))["explanation"]
    assert "more exposed (AUC 0.80 vs 0.55" in exposed and "epsilon 2.00" in exposed
    calm = judge(_metrics(0.6, 0.05, marked=(0.57, 0.55)))["explanation"]
    assert "not measurably more exposed" in calm and "no formal bound" in calm
