"""The experiments on public datasets (configs/experiment/): how a run's data_root, dataset and
task.manifest fit together before any folder is read, and the manifest cached in the run
directory."""

import csv
import json

import pytest
from conftest import ROOT
from helpers.replicas import prostate_release
from hydra import compose, initialize_config_dir

from simulations.dataset import DATASET, MANIFEST, read_dataset, use_manifest
from simulations.run import prepare
from sites.errors import ConfigError

EXPERIMENTS = ("smg_prostate", "smg_prostate_holdout", "cmg_brats", "pbbl_sbp", "pbbl_gbp")


def config(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        return compose(config_name="config", overrides=list(overrides))


def test_a_run_without_data_root_reads_no_dataset():
    assert read_dataset(config("size=smoke")) is None


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_an_experiment_without_data_root_says_what_to_set(experiment):
    with pytest.raises(ConfigError, match=r"^data_root: the experiment reads the \w+ dataset's folder as downloaded: "
                                          r"set data_root=<folder>$"):
        read_dataset(config(f"+experiment={experiment}"))


def test_data_root_without_an_experiment_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^data_root: needs an experiment that names the dataset: "):
        read_dataset(config(f"data_root={tmp_path}"))


def test_a_data_root_that_is_no_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=rf"^data_root: no such folder: {tmp_path / 'gone'}$"):
        read_dataset(config("+experiment=smg_prostate", f"data_root={tmp_path / 'gone'}"))


def test_task_manifest_with_data_root_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^task.manifest: the experiment builds it from data_root; leave it unset$"):
        read_dataset(config("+experiment=smg_prostate", f"data_root={tmp_path}", f"task.manifest={tmp_path}/m.csv"))


def test_the_manifest_is_cached_in_the_run_directory_and_the_task_points_at_it(tmp_path):
    release = prostate_release(tmp_path / "data")
    cfg = config("+experiment=smg_prostate", f"data_root={release}")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = use_manifest(cfg, read_dataset(cfg), run_dir)
    assert path == run_dir / MANIFEST and cfg.task.manifest == str(path)
    assert list(cfg.task.label_values) == [1, 2]
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["site"] for row in rows[::2]] == ["RUNMC", "BMC", "I2CVB", "UCL", "BIDMC", "HK"]
    shown = json.loads((run_dir / DATASET).read_text())
    assert shown["cases"]["HK"] == {"cases": 2} and shown["notes"] == ["mask values read as prostate: [1, 2]"]


def test_a_run_prepared_without_its_dataset_step_is_refused(tmp_path):
    """As a deployment's SuperNode would prepare it: data_root given, no manifest built."""
    with pytest.raises(ConfigError, match=r"^data_root: is read where a simulation starts "):
        prepare(config("+experiment=smg_prostate", f"data_root={tmp_path}"), tmp_path)
