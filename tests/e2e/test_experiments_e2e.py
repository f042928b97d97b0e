"""Each paper's experiment end to end from a miniature replica of its public dataset's folder,
in one command: ``python -m simulations.run +experiment=<name> data_root=<replica> size=smoke``.
Figures from the replicas are not results."""

import csv

import pytest
from conftest import read_json, run_cli
from helpers.replicas import brats_2018, files_of, gbp_split, prostate_release, sbp_split

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def manifest_rows(run_dir):
    with (run_dir / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_smg_prostate_from_the_release_s_folder(tmp_path):
    release = prostate_release(tmp_path / "data")
    before = files_of(release)
    completed = run_cli("+experiment=smg_prostate_holdout", f"data_root={release}", "size=smoke",
                        f"hydra.run.dir={tmp_path / 'run'}")
    assert completed.returncode == 0, completed.stderr
    assert "cases per site and class" in completed.stderr and "mask values read as prostate: [1, 2]" in completed.stderr
    assert len(manifest_rows(tmp_path / "run")) == 12
    matrix = read_json(tmp_path / "run" / "matrix.json")
    assert matrix["sites"] == ["RUNMC", "BMC", "I2CVB", "UCL", "BIDMC", "HK"] and len(matrix["R"]) == 5
    assert files_of(release) == before


def test_cmg_brats_from_the_2018_training_folder(tmp_path):
    release = brats_2018(tmp_path / "data")
    completed = run_cli("+experiment=cmg_brats", f"data_root={release}", "size=smoke",
                        f"hydra.run.dir={tmp_path / 'run'}")
    assert completed.returncode == 0, completed.stderr
    assert "BraTS 2018; institutions per site" in completed.stderr
    assert {row["site"] for row in manifest_rows(tmp_path / "run")} == {"TCIA", "other"}
    summary = read_json(tmp_path / "run" / "summary.json")
    assert len(read_json(tmp_path / "run" / "matrix.json")["R"]) == 2 and "memorizability" in summary


def test_pbbl_sbp_from_the_split_folder_and_the_image_trees(tmp_path):
    split, nih, mimic = sbp_split(tmp_path / "data")
    completed = run_cli("+experiment=pbbl_sbp", f"data_root={split}", f"nih_root={nih}", f"mimic_root={mimic}",
                        "task.backbone_weights=none", "size=smoke", f"hydra.run.dir={tmp_path / 'run'}")
    assert completed.returncode == 0, completed.stderr
    assert "share of each site's training images whose bias equals the label" in completed.stderr
    assert {(row["site"], row["bias"]) for row in manifest_rows(tmp_path / "run")} == {("NIH", "0"), ("MIMIC", "1")}
    pooled = read_json(tmp_path / "run" / "summary.json")["pooled"]
    assert {"balanced_auc", "aligned_auc", "conflicting_auc", "pseudo_label_accuracy"} <= set(pooled)


def test_pbbl_gbp_from_the_split_folder(tmp_path):
    split, nih = gbp_split(tmp_path / "data")
    completed = run_cli("+experiment=pbbl_gbp", f"data_root={split}", f"nih_root={nih}", "task.backbone_weights=none",
                        "size=smoke", f"hydra.run.dir={tmp_path / 'run'}")
    assert completed.returncode == 0, completed.stderr
    assert {row["site"] for row in manifest_rows(tmp_path / "run")} == {"A", "B", "C"}
    assert "pseudo_label_accuracy" in read_json(tmp_path / "run" / "summary.json")["pooled"]
