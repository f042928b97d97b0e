"""Each paper's experiment end to end from a miniature replica of its public dataset's folder,
in one command: ``python -m simulations.run +experiment=<name> data_root=<replica> size=smoke``.
Figures from the replicas are not results."""

import csv

import pytest

from conftest import read_json, run_cli
from replicas import brats_2018, prostate_release

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def manifest_rows(run_dir):
    with (run_dir / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_smg_prostate_from_the_release_s_folder(tmp_path):
    release = prostate_release(tmp_path / "data")
    completed = run_cli("+experiment=smg_prostate_holdout", f"data_root={release}", "size=smoke",
                        f"hydra.run.dir={tmp_path / 'run'}")
    assert completed.returncode == 0, completed.stderr
    assert "cases per site and class" in completed.stderr and "mask values read as prostate: [1, 2]" in completed.stderr
    assert len(manifest_rows(tmp_path / "run")) == 12
    matrix = read_json(tmp_path / "run" / "matrix.json")
    assert matrix["sites"] == ["RUNMC", "BMC", "I2CVB", "UCL", "BIDMC", "HK"] and len(matrix["R"]) == 5


def test_cmg_brats_from_the_2018_training_folder(tmp_path):
    release = brats_2018(tmp_path / "data")
    completed = run_cli("+experiment=cmg_brats", f"data_root={release}", "size=smoke",
                        f"hydra.run.dir={tmp_path / 'run'}")
    assert completed.returncode == 0, completed.stderr
    assert "BraTS 2018; institutions per site" in completed.stderr
    assert {row["site"] for row in manifest_rows(tmp_path / "run")} == {"TCIA", "other"}
    summary = read_json(tmp_path / "run" / "summary.json")
    assert len(read_json(tmp_path / "run" / "matrix.json")["R"]) == 2 and "memorizability" in summary
