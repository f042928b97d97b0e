"""The continual-learning strategies end to end at ``size=smoke``: PGA with SMD replay on every
task, each baseline on one task (together every strategy and every task), the replay report,
the message audit, and the configurations refused before anything runs."""

import json
from pathlib import Path

import pytest
from conftest import assert_only_declared_content_left_the_sites, read_json, run_cli, undeclared_content

pytestmark = pytest.mark.e2e

RUNS = {
    "pga-segmentation": ("strategy=pga", "task=segmentation"),
    "pga-grading": ("strategy=pga", "task=grading"),
    "pga-debiasing": ("strategy=pga", "task=debiasing"),
    "replay_buffer-grading": ("strategy=replay_buffer", "task=grading"),
    "smd_replay-segmentation": ("strategy=smd_replay", "task=segmentation"),
}


class _Runs(dict):
    """The runs of :data:`RUNS`, each made when a test first asks for it, so that the default
    (not ``slow``) tests pay for PGA on segmentation only."""

    def __init__(self, root: Path, ray_head: str) -> None:
        super().__init__()
        self._root, self._ray_head = root, ray_head

    def __missing__(self, name: str) -> Path:
        run_dir = self._root / name
        completed = run_cli(*RUNS[name], "size=smoke", f"hydra.run.dir={run_dir}", ray_head=self._ray_head)
        assert completed.returncode == 0, f"{name}: {completed.stderr[-3000:]}"
        self[name] = run_dir
        return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory, ray_head) -> _Runs:
    return _Runs(tmp_path_factory.mktemp("continual"), ray_head)


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_every_strategy_runs_with_every_task(runs):
    for name in RUNS:
        run_dir = runs[name]
        matrix = read_json(run_dir / "matrix.json")
        assert len(matrix["R"]) == 4, name
        assert "## R[t, j]" in (run_dir / "report.md").read_text()


@pytest.mark.parametrize("name", ["pga-segmentation", pytest.param("pga-grading", marks=pytest.mark.slow),
                                  pytest.param("pga-debiasing", marks=pytest.mark.slow)])
def test_smd_trains_at_every_site_and_replays_earlier_ones(runs, name):
    run_dir = runs[name]
    replay = read_json(run_dir / "replay.json")
    assert replay["source"] == "smd" and replay["private"]
    assert sorted(replay["training"]) == ["A", "B", "C", "D"]  # each trained once, in its stage
    assert all(len(runs_) == 1 for runs_ in replay["training"].values())
    assert len(replay["sampling_seconds"]) == 1 + 2 + 3  # stages 2, 3, 4 replay 1, 2, 3 earlier sites
    generator_events = [e for e in _events(run_dir) if e["event"] == "replay"]
    assert [e["site"] for e in generator_events] == ["A", "B", "C", "D"]
    assert_only_declared_content_left_the_sites(run_dir)  # weights and prompts only, no image


def test_pga_replies_carry_the_alignment_and_its_share(runs):
    trained = [e for e in _events(runs["pga-segmentation"]) if e["event"] == "train"]
    keys = {"pga-alignment", "pga-alignment-share"}
    assert {e["site"] for e in trained} == {"A", "B", "C", "D"}
    for event in trained:  # stage 1 (site A) too: its pseudo-domains give the generalizability objective
        metrics = event["metrics"]
        assert keys <= set(metrics), event
        assert -1 <= metrics["pga-alignment"] <= 1 and metrics["pga-alignment-share"] > 0, event


def test_pga_server_meta_steps_act_from_the_first_replayed_stage(runs):
    aggregated = [e for e in _events(runs["pga-segmentation"]) if e["event"] == "aggregate"]
    stepped = {e["stage"] for e in aggregated if e["metrics"].get("pga-server-share", 0) > 0}
    # Stage 1 replays nothing; stage 2 replays A, which with its pseudo-domains has two domains.
    assert {e["stage"] for e in aggregated} == {1, 2, 3, 4} and stepped == {2, 3, 4}
    assert all("train_loss" in e["metrics"] for e in aggregated)


@pytest.mark.parametrize("name, class_conditional", [
    ("pga-segmentation", False), pytest.param("pga-grading", True, marks=pytest.mark.slow),
    pytest.param("pga-debiasing", True, marks=pytest.mark.slow)])
def test_report_shows_replay_samples_and_fidelity(runs, name, class_conditional):
    run_dir = runs[name]
    fidelity = read_json(run_dir / "replay.json")["fidelity"]
    assert sorted(fidelity["sites"]) == ["A", "B", "C", "D"]
    for kind in ("real", "real_training", "replay"):
        assert 0 <= fidelity["site_accuracy"][kind] <= 1
    assert ("class_accuracy" in fidelity) == class_conditional
    if not class_conditional:
        assert "organ_contrast" in fidelity["sites"]["A"]["replay"]
    report = (run_dir / "report.md").read_text()
    assert "## Replay" in report and "### Fidelity" in report and "![replay samples](replay_samples.png)" in report
    assert (run_dir / "replay_samples.png").stat().st_size > 1000


@pytest.mark.slow
def test_real_buffer_is_labelled_and_caught_by_the_message_audit(runs):
    run_dir = runs["replay_buffer-grading"]
    replay = read_json(run_dir / "replay.json")
    assert replay == {"source": "real", "private": False, "exemplars": {"A": 4, "B": 4, "C": 4, "D": 4}}
    assert "Not private: real training samples left the sites" in (run_dir / "report.md").read_text()
    problems = undeclared_content(_events(run_dir), {})
    assert any("undeclared arrays record 'exemplars'" in problem for problem in problems)


def test_ewc_sites_send_their_fisher_at_the_end_of_each_phase_of_their_stage(ewc_pbbl_run):
    events = _events(ewc_pbbl_run)
    fisher = [(e["stage"], e["site"]) for e in events if e["event"] == "fisher"]
    # PBBL has two phases; the strategy cannot tell a stage's last phase, so it asks after each
    assert fisher == [(stage, site) for stage, site in enumerate("ABCD", start=1) for _ in range(2)]
    assert_only_declared_content_left_the_sites(ewc_pbbl_run)


def test_a_bad_replay_config_stops_the_cli_before_anything_runs(tmp_path):
    completed = run_cli("replay=smd", "size=smoke", f"hydra.run.dir={tmp_path / 'run'}")
    assert completed.returncode == 2
    assert "error: replay: FedAvg does not train on replay" in completed.stderr.replace("\n", " ")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
