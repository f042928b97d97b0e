"""Shared fixtures: Flower message identity, the default configs, and running the CLI."""

import copy
import csv
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from flwr.supercore.task_identity import TaskIdentity
from omegaconf import OmegaConf

from server.scenario import Scenario
from sites.data.brain import MODALITIES
from sites.errors import ConfigError
from sites.tasks import build_task

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def flower_identity():
    """Messages built outside a Flower run need the identity the engine would set."""
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0
    yield


def load_config(group: str, name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / group / f"{name}.yaml"), resolve=True)


@pytest.fixture
def scenario_config() -> dict:
    return load_config("scenario", "sequential_sites")


@pytest.fixture
def scenario(scenario_config) -> Scenario:
    return Scenario.from_config(scenario_config)


@pytest.fixture
def small_task_config() -> dict:
    """The segmentation task at smoke size, small enough for unit tests."""
    config = load_config("task", "segmentation")
    config.update(n_train=16, n_test=8, batch_size=8, local_steps=3, image_size=32,
                  channels=[8, 16, 32], strides=[2, 2])
    return config


@pytest.fixture
def small_task(small_task_config):
    return build_task(small_task_config)


def task_config_error_key(config: dict, changes: dict) -> str:
    """The config key named by the error of building a task from ``config`` with ``changes``."""
    with pytest.raises(ConfigError) as raised:
        build_task({**copy.deepcopy(config), **changes})
    return raised.value.key


def run_cli(*overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m simulations.run <overrides>`` from the repository root."""
    return subprocess.run([sys.executable, "-m", "simulations.run", *overrides], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=600)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture
def small_debiasing_config() -> dict:
    """The debiasing task at unit-test size."""
    config = load_config("task", "debiasing")
    config.update(n_train=24, n_test=16, batch_size=8, local_steps=3, image_size=32, channels=[8, 16], strides=[2, 2])
    return config


@pytest.fixture
def small_debiasing_task(small_debiasing_config):
    return build_task(small_debiasing_config)


@pytest.fixture
def small_grading_config() -> dict:
    """The grading task at unit-test size."""
    config = load_config("task", "grading")
    config.update(n_train=16, n_validation=8, n_test=8, batch_size=4, local_steps=2, depth=4, image_size=16,
                  channels=[4, 8])
    return config


def write_brats_case(root, case, shape=(12, 10, 8), skip=(), override=None):
    """A BraTS-style case folder: one random NIfTI volume per modality, minus ``skip``,
    with ``override`` arrays in place of the random ones."""
    folder = root / case
    folder.mkdir()
    rng = np.random.default_rng(len(case))
    for modality in MODALITIES:
        if modality in skip:
            continue
        data = (override or {}).get(modality, rng.normal(size=shape).astype(np.float32))
        nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.eye(4)), folder / f"{case}_{modality}.nii.gz")


def write_manifest(root, rows, columns=("case", "grade", "site", "split")):
    """A CSV manifest in ``root``."""
    path = root / "manifest.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path
