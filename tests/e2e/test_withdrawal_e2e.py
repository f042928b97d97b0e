"""Site withdrawal end to end: a ``-m unlearning=...`` sweep over every method (``size=smoke``),
its per-run report sections and methods table, and bad withdrawals refused before anything runs."""

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import ROOT, assert_only_declared_content_left_the_sites, digest, read_json, run_cli

pytestmark = pytest.mark.e2e

METHODS = ("none", "retrain", "rewind", "ga", "graddiff", "kl", "npo", "federaser")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, ray_head) -> dict[str, Path]:
    sweep_dir = tmp_path_factory.mktemp("sweep")
    completed = run_cli("-m", "scenario=site_withdrawal", "size=smoke", f"unlearning={','.join(METHODS)}",
                        f"hydra.sweep.dir={sweep_dir}", ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr[-3000:]
    runs = {}
    for run_dir in sweep_dir.iterdir():
        if (run_dir / "withdrawal.json").is_file():
            runs[read_json(run_dir / "withdrawal.json")[0]["method"]] = run_dir
    return runs


def _record(run_dir: Path) -> dict:
    (record,) = read_json(run_dir / "withdrawal.json")
    return record


@pytest.mark.slow
def test_every_method_runs_and_reports(sweep):
    assert set(sweep) == set(METHODS)
    for method, run_dir in sweep.items():
        record = _record(run_dir)
        assert (record["site"], record["stage"], record["reason"]) == ("B", 2, "privacy")
        assert record["subsets"] == {"forget": ["B"], "retain": ["A", "C", "D"], "test": ["A", "C", "D", "E"]}
        assert set(record["mia_forget_auc"]) == {"before", "after", "oracle"}
        assert record["retrain_seconds"] > 0
        report = (run_dir / "report.md").read_text()
        assert "## Site withdrawal" in report and f"method: {method}" in report
        assert len(read_json(run_dir / "matrix.json")["R"]) == 2


@pytest.mark.slow
def test_retrain_is_the_oracle_and_none_keeps_the_model(sweep):
    retrain, none = _record(sweep["retrain"]), _record(sweep["none"])
    assert retrain["performance"]["after"] == retrain["performance"]["oracle"]
    assert retrain["cost_ratio"] == 1.0
    assert none["performance"]["after"] == none["performance"]["before"]
    for name in ("stage_2_without_B.pt", "stage_2_oracle_without_B.pt"):  # what the timeline continues from
        assert (sweep["npo"] / "checkpoints" / name).is_file()


@pytest.mark.slow
def test_same_seed_same_model_before_withdrawal(sweep):
    befores = {json.dumps(_record(run_dir)["performance"]["before"]) for run_dir in sweep.values()}
    assert len(befores) == 1


@pytest.mark.slow
def test_site_methods_unlearn_at_the_withdrawing_site_and_retain_at_the_others(sweep):
    def training_replies(method: str) -> Counter:
        events = [json.loads(line) for line in (sweep[method] / "metrics.jsonl").read_text().splitlines()]
        return Counter(e["site"] for e in events if e["event"] == "withdrawal" and "train_loss" in e["metrics"])

    oracle = Counter({"A": 1, "C": 1, "D": 1})  # retraining: A and C in stage 1, D in stage 2, one round each
    rounds = 4  # configs/unlearning/*.yaml
    assert training_replies("none") == oracle
    assert training_replies("ga") == training_replies("npo") == oracle + Counter({"B": rounds})
    assert training_replies("graddiff") == training_replies("kl") == oracle + Counter(
        {"B": rounds, "A": rounds, "C": rounds, "D": rounds})
    assert training_replies("rewind") == oracle + Counter({"D": 1})  # from stage 1's checkpoint: stage 2 without B
    assert training_replies("federaser") == oracle + Counter({"D": 1})  # stage 2's one stored round, calibrated


@pytest.mark.slow
def test_federaser_keeps_the_updates_it_calibrates_from(sweep):
    stored = sorted((sweep["federaser"] / "updates").glob("round_*.pt"))
    assert len(stored) == 2  # one round per stage at size=smoke
    assert not (sweep["npo"] / "updates").exists()


@pytest.mark.slow
def test_the_sweep_writes_a_methods_table(sweep):
    table = (next(iter(sweep.values())).parent / "withdrawal_table.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| B |")]
    assert sorted(row.split("|")[3].strip() for row in rows) == sorted(METHODS)


@pytest.mark.slow
def test_only_declared_content_leaves_the_sites_during_a_withdrawal(sweep):
    for method in ("graddiff", "federaser"):
        assert_only_declared_content_left_the_sites(sweep[method])


@pytest.mark.parametrize("override, expected", [
    ("scenario.withdrawals=[{site: Z, stage: 2}]", "scenario.withdrawals.0.site"),
    # each refusal is unit-tested (tests/server/test_withdrawal_config.py); one goes through the
    # command line in the default run, the others in the slow run (each costs a start of the CLI)
    pytest.param("scenario.withdrawals=[{site: E, stage: 2}]", "never trains", marks=pytest.mark.slow),
    pytest.param("scenario.withdrawals=[{site: B, stage: 1}]", "only arrives in stage 2", marks=pytest.mark.slow),
    pytest.param("scenario.withdrawals=[{site: B, stage: 2}, {site: B, stage: 2}]", "already withdraws",
                 marks=pytest.mark.slow),
])
def test_bad_withdrawals_stop_before_anything_runs(tmp_path, override, expected):
    completed = run_cli("scenario=site_withdrawal", "size=smoke", override, f"hydra.run.dir={tmp_path / 'run'}")
    assert completed.returncode == 2
    assert expected in " ".join((completed.stdout + completed.stderr).split())  # the console wraps long lines
    assert not (tmp_path / "run" / "config.yaml").exists()  # refused before the run directory was claimed


@pytest.mark.slow
def test_a_withdrawal_never_touches_an_earlier_run(sweep):
    earlier = sweep["retrain"]
    before = digest(earlier)
    completed = run_cli("scenario=site_withdrawal", "size=smoke", "unlearning=ga", f"hydra.run.dir={earlier}")
    assert completed.returncode == 2 and "already holds a run" in completed.stdout + completed.stderr
    assert digest(earlier) == before


def test_a_users_unlearning_method_plugs_in(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "plugins")])}
    completed = run_cli("scenario=site_withdrawal", "size=smoke", "unlearning._target_=my_unlearning.HalfwayBack",
                        "+unlearning.share=0.5", f"hydra.run.dir={tmp_path}", env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    record = _record(tmp_path)
    assert record["method"] == "halfway_back"
    assert record["performance"]["after"] != record["performance"]["before"]
    # B arrived in stage 2: halfway from the model after stage 2 back to the one after stage 1
    arrival, before, after = (torch.load(tmp_path / "checkpoints" / f"stage_{name}.pt")
                              for name in ("1", "2", "2_without_B"))
    for key, value in after.items():
        expected = (arrival[key] + before[key]) / 2 if value.is_floating_point() else before[key]
        assert torch.allclose(value, expected), key
