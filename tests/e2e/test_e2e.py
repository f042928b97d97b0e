"""Whole runs through the command line, Flower's simulation engine and Ray (``size=smoke``)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    ROOT,
    assert_only_declared_content_left_the_sites,
    read_json,
    run_cli,
    write_brats_case,
    write_manifest,
    write_segmentation_case,
)
from PIL import Image

from sites.thresholds import THRESHOLD_BINS

pytestmark = pytest.mark.e2e

SUMMARY_KEYS = {"memorizability", "generalizability", "bwt", "forgetting", "per_stage"}


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_run_writes_its_directory(fedavg_run):
    for name in ("config.yaml", "metrics.jsonl", "matrix.json", "summary.json", "report.md", "report.html",
                 "heatmap.png", "site_curves.png", "checkpoints/stage_4.pt"):
        assert (fedavg_run / name).is_file(), name
    assert SUMMARY_KEYS <= set(read_json(fedavg_run / "summary.json"))
    matrix = read_json(fedavg_run / "matrix.json")
    assert matrix["sites"] == ["A", "B", "C", "D", "E"] and len(matrix["R"]) == 4
    assert all(0.0 <= value <= 1.0 for row in matrix["R"] for value in row)
    assert "heatmap.png" in (fedavg_run / "report.md").read_text()
    assert "<table>" in (fedavg_run / "report.html").read_text()


def test_only_model_arrays_metrics_and_counts_leave_the_sites(fedavg_run):
    assert_only_declared_content_left_the_sites(fedavg_run)


def test_only_the_stage_sites_train_and_every_site_is_evaluated(fedavg_run):
    events = _events(fedavg_run)
    trained = {(e["stage"], e["site"]) for e in events if e["event"] == "train"}
    assert trained == {(1, "A"), (2, "B"), (3, "C"), (4, "D")}
    evaluated = {(e["stage"], e["site"]) for e in events if e["event"] == "matrix"}
    assert evaluated == {(t, s) for t in range(1, 5) for s in "ABCDE"}


def test_evaluating_on_validation_splits_trains_alike_and_measures_other_cases(fedavg_run, ray_head, tmp_path):
    completed = run_cli("size=smoke", "seed=3", "evaluate_split=validation", f"hydra.run.dir={tmp_path}",
                        ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr

    def losses(run_dir: Path) -> list[float]:
        return [e["metrics"]["train_loss"] for e in _events(run_dir) if e["event"] == "train"]

    assert losses(tmp_path) == losses(fedavg_run)
    assert read_json(tmp_path / "summary.json")["split"] == "validation"
    assert read_json(fedavg_run / "summary.json")["split"] == "test"
    assert read_json(tmp_path / "matrix.json")["R"] != read_json(fedavg_run / "matrix.json")["R"]
    assert "on each site's validation split" in (tmp_path / "report.md").read_text()


@pytest.mark.slow  # joint's schedule is unit-tested (tests/server/test_scenario.py)
def test_joint_trains_every_training_site_at_every_stage(ray_head, tmp_path):
    completed = run_cli("size=smoke", "strategy=joint", f"hydra.run.dir={tmp_path}", ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr
    trained = {(e["stage"], e["site"]) for e in _events(tmp_path) if e["event"] == "train"}
    assert trained == {(t, s) for t in range(1, 5) for s in "ABCD"}


@pytest.mark.slow  # the default run plugs in a user's strategy class (next test)
def test_flowers_fedprox_plugs_in_and_its_proximal_term_is_applied(fedavg_run, ray_head, tmp_path):
    completed = run_cli("size=smoke", "seed=3", "strategy._target_=flwr.serverapp.strategy.FedProx",
                        "+strategy.proximal_mu=5.0", f"hydra.run.dir={tmp_path}", ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr
    assert read_json(tmp_path / "matrix.json")["R"] != read_json(fedavg_run / "matrix.json")["R"]


def test_a_users_strategy_class_plugs_in(ray_head, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "plugins")}
    completed = run_cli("size=smoke", "strategy._target_=frozen_strategy.FrozenFedAvg", "+strategy.label=mine",
                        f"hydra.run.dir={tmp_path}", env=env, ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr
    rows = read_json(tmp_path / "matrix.json")["R"]
    assert all(row == rows[0] for row in rows)  # the frozen global model never moved


def test_a_saved_config_reproduces_its_run_also_attached_to_a_ray_cluster(fedavg_run, ray_head, tmp_path):
    # fedavg_run started its own Ray instance; the rerun attaches to the session's head
    completed = run_cli("--config-path", str(fedavg_run), "--config-name", "config",
                        f"hydra.run.dir={tmp_path / 'rerun'}", ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr
    assert read_json(tmp_path / "rerun" / "matrix.json") == read_json(fedavg_run / "matrix.json")


def test_debiasing_with_pbbl_sums_only_counts_and_reports_federation_wide_auc(ewc_pbbl_run):
    events = _events(ewc_pbbl_run)
    statistics = [e for e in events if e["event"] == "statistics"]
    assert {(e["stage"], e["site"]) for e in statistics} == {(1, "A"), (2, "B"), (3, "C"), (4, "D")}
    # the federation threshold's histograms of the bias model's probability, per label and known bias
    histograms = {f"p-{name}-{k:03d}" for name in ("y0", "y1", "b0", "b1") for k in range(THRESHOLD_BINS)}
    assert all(set(e["metrics"]) == histograms for e in statistics)
    phases = [e for e in events if e["event"] == "train" and e["stage"] == 1]
    assert len(phases) == 2 + 2  # two rounds of the bias phase, two of the debias phase
    summary = read_json(ewc_pbbl_run / "summary.json")
    assert summary["metric"] == "balanced_auc"
    assert {"aligned_auc", "conflicting_auc", "balanced_auc", "pseudo_label_accuracy"} <= set(summary["pooled"])
    assert "Federation-wide metrics" in (ewc_pbbl_run / "report.md").read_text()
    assert_only_declared_content_left_the_sites(ewc_pbbl_run)


@pytest.mark.slow  # the default run has PBBL in the same arrangement (next test)
def test_debiasing_in_the_federated_arrangement(ray_head, tmp_path):
    completed = run_cli("size=smoke", "scenario=federated_sources", "task=debiasing", "task.arrangement=federated",
                        "task.method=bias_balanced_oracle", f"hydra.run.dir={tmp_path}", ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr
    summary = read_json(tmp_path / "summary.json")
    assert summary["metric"] == "auc" and "conflicting_auc" in summary["pooled"]


def test_pbbl_relabels_with_federation_thresholds_in_the_federated_arrangement(ray_head, tmp_path):
    completed = run_cli("size=smoke", "scenario=federated_sources", "task=debiasing", "task.arrangement=federated",
                        "task.method=pbbl", "task.pseudo_label_rounds=2", f"hydra.run.dir={tmp_path}",
                        ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr[-3000:]
    events = _events(tmp_path)
    # histograms before the second round's bias phase and before debias, from each of the four sites
    statistics = [e for e in events if e["event"] == "statistics"]
    assert len(statistics) == 2 * 4
    assert all(len(e["metrics"]) == 4 * THRESHOLD_BINS for e in statistics)
    assert "pseudo_label_accuracy" in read_json(tmp_path / "summary.json")["pooled"]
    assert_only_declared_content_left_the_sites(tmp_path)


@pytest.mark.slow
def test_grading_with_cross_modality_guidance_chooses_its_primary_on_validation_data(ray_head, tmp_path):
    completed = run_cli("size=smoke", "task=grading", f"hydra.run.dir={tmp_path}", ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr
    events = _events(tmp_path)
    statistics = [e for e in events if e["event"] == "statistics"]
    assert {(e["stage"], e["site"]) for e in statistics} == {(1, "A"), (2, "B"), (3, "C"), (4, "D")}
    assert set(statistics[0]["metrics"]) == {"validation-n", "validation-pairs",
                                             *(f"validation-{kind}-{m}" for kind in ("nll", "concordant")
                                               for m in ("t1", "t1ce", "t2", "flair"))}
    assert len([e for e in events if e["event"] == "train" and e["stage"] == 1]) == 2  # branches, guided
    summary = read_json(tmp_path / "summary.json")
    assert summary["metric"] == "auc" and {"validation_nll_t1ce", "validation_auc_t1ce"} <= set(summary["pooled"])
    matrix = read_json(tmp_path / "matrix.json")
    assert {"auc", "accuracy", "sensitivity", "specificity", "auc-flair"} <= set(matrix["site_metrics"][-1]["E"])
    # The primary the server set is the branch with the highest pooled validation AUC, and the report says it.
    pooled, primary = matrix["pooled"][-1], matrix["phase_configs"][-1]["guided"]["primary-modality"]
    assert pooled[f"validation_auc_{primary}"] == max(v for k, v in pooled.items() if k.startswith("validation_auc_"))
    assert f"| 4 | guided | primary-modality: {primary} |" in (tmp_path / "report.md").read_text()
    assert_only_declared_content_left_the_sites(tmp_path)


def _brats_cohort(root):
    rows = []
    for i, split in enumerate(["train"] * 4 + ["validation"] * 2 + ["test"] * 2):
        write_brats_case(root, f"case{i}")
        rows.append([f"case{i}", "HGG" if i % 2 else "LGG", "A", split])
    return write_manifest(root, rows)


# Slow: the loader is unit-tested (tests/sites/data/test_grading_data.py); the default run reads segmentation from disk.
@pytest.mark.slow
def test_grading_reads_brats_style_cases_from_disk(ray_head, tmp_path):
    (tmp_path / "data").mkdir()
    manifest = _brats_cohort(tmp_path / "data")
    completed = run_cli("size=smoke", "scenario=centralized", "task=grading", "task.model=late_fusion",
                        f"task.manifest={manifest}", "task.depth=8", f"hydra.run.dir={tmp_path / 'run'}",
                        ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr
    assert read_json(tmp_path / "run" / "matrix.json")["site_metrics"][0]["A"]["num-examples"] == 2


def test_segmentation_reads_nifti_cases_from_disk(ray_head, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [[*write_segmentation_case(data, f"case{i}"), "A", "test" if i == 2 else "train"] for i in range(3)]
    manifest = write_manifest(data, rows, columns=("image", "mask", "site", "split"))
    completed = run_cli("size=smoke", "scenario=centralized", f"task.manifest={manifest}",
                        f"hydra.run.dir={tmp_path / 'run'}", ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr
    metrics = read_json(tmp_path / "run" / "matrix.json")["site_metrics"][0]["A"]
    assert metrics["num-examples"] == 4 and 0 <= metrics["dice"] <= 1  # the test case's four organ slices


# Slow: the loader is unit-tested (tests/sites/data/test_manifest.py); the default run reads segmentation from disk.
@pytest.mark.slow
def test_debiasing_reads_radiographs_from_disk(ray_head, tmp_path):
    """Grey and colour PNGs (the colour ones read as their luminance), every label x bias pair in
    each split, through the CLI."""
    data = tmp_path / "data"
    data.mkdir()
    rows = []
    for i in range(8):
        shape = (20, 24, 3) if i % 3 == 0 else (20, 24)
        Image.fromarray(np.random.default_rng(i).integers(0, 255, size=shape, dtype=np.uint8)).save(data / f"x{i}.png")
        rows.append([f"x{i}.png", i % 2, i // 2 % 2, "A", "test" if i >= 4 else "train"])
    manifest = write_manifest(data, rows, columns=("path", "label", "bias", "site", "split"))
    completed = run_cli("size=smoke", "scenario=centralized", "task=debiasing", f"task.manifest={manifest}",
                        f"hydra.run.dir={tmp_path / 'run'}", ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr
    metrics = read_json(tmp_path / "run" / "matrix.json")["site_metrics"][0]["A"]
    assert metrics["num-examples"] == 4 and 0 <= metrics["auc"] <= 1


@pytest.mark.slow
def test_dp_training_reports_each_site_s_composed_epsilon_within_its_target(ray_head, tmp_path):
    completed = run_cli("size=smoke", "privacy=dp", "privacy.target_epsilon=4.0", "scenario.rounds_per_stage=2",
                        f"hydra.run.dir={tmp_path}", ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr
    trains = [e for e in _events(tmp_path) if e["event"] == "train"]
    by_site = {}
    for event in trains:
        by_site.setdefault(event["site"], []).append(event["metrics"]["epsilon"])
    assert set(by_site) == {"A", "B", "C", "D"}
    for epsilons in by_site.values():  # spent only in its own stage, growing round by round, up to the target
        assert len(epsilons) == 2 and 0 < epsilons[0] < epsilons[1] <= 4.0
        assert epsilons[1] > 3.9
