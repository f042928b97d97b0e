"""Shared fixtures: Flower message identity, the default configs, and running the CLI."""

import copy
import csv
import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from flwr.supercore.task_identity import TaskIdentity
from omegaconf import OmegaConf

from server.scenario import Scenario, ScenarioConfig
from sites.config import parse
from sites.data.brain import MODALITIES
from sites.diffusion import build_generator
from sites.errors import ConfigError
from sites.protocol import (
    AUDIT,
    CHECK_DATA,
    EVALUATE,
    FISHER,
    IDENTIFY,
    RESUME,
    STATISTICS,
    TRAIN,
    TRAIN_GENERATOR,
    UNLEARN,
    AccountantHistory,
    GeneratorConfig,
    RecordKind,
    RecordName,
    ReplayOptions,
    SiteIdentity,
)
from sites.tasks import build_task
from strategies import build_strategy

ROOT = Path(__file__).resolve().parent.parent
# The Flower App deployed on loopback (the `deployment` fixture), shared by the modules that test it.
pytest_plugins = ["helpers.flower_federation"]


@pytest.fixture(autouse=True)
def flower_identity():
    """Messages built outside a Flower run need the identity the engine would set."""
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 0
    yield


def load_config(group: str, name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / group / f"{name}.yaml"), resolve=True)


def build_scenario(config: dict) -> Scenario:
    """The timeline of a ``scenario`` config node, validated as the entry point validates it."""
    return Scenario.from_config(parse(ScenarioConfig, config, "scenario"))


@pytest.fixture
def plugins(monkeypatch) -> None:
    """``tests/plugins`` on the import path: a user's classes, defined outside the packages."""
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "plugins"))


@pytest.fixture
def scenario_config() -> dict:
    return load_config("scenario", "sequential_sites")


@pytest.fixture
def withdrawal_config() -> dict:
    return load_config("scenario", "site_withdrawal")


@pytest.fixture
def scenario(scenario_config) -> Scenario:
    return build_scenario(scenario_config)


@pytest.fixture
def small_task_config() -> dict:
    """The segmentation task at smoke size, small enough for unit tests."""
    config = load_config("task", "segmentation")
    config.update(n_train=16, n_test=8, n_validation=6, batch_size=8, local_steps=3, image_size=32,
                  channels=[8, 16, 32], strides=[2, 2])
    return config


@pytest.fixture
def small_task(small_task_config):
    return build_task(small_task_config)


def task_config_error(config: dict, changes: dict) -> tuple[str, str]:
    """The config key and the problem named by the error of building a task from ``config``
    with ``changes``."""
    with pytest.raises(ConfigError) as raised:
        build_task({**copy.deepcopy(config), **changes})
    return raised.value.key, raised.value.problem


def pga_options(**changes) -> ReplayOptions:
    """The replay options PGA sends the sites with its default arguments, ``changes`` applied."""
    return replace(build_strategy({"_target_": "strategies.pga.PGA"}).options, **changes)


def run_cli(*overrides: str, env: dict | None = None, ray_head: str | None = None) -> subprocess.CompletedProcess:
    """``python -m simulations.run <overrides>`` from the repository root, on a private Ray
    instance or, given ``ray_head`` (the :func:`ray_head` fixture), attached to that head."""
    if ray_head is not None:
        overrides = (*overrides, f"backend.address={ray_head}")
    return subprocess.run([sys.executable, "-m", "simulations.run", *overrides], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=600)


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def ray_head():
    """The address of a 2-CPU Ray head on 127.0.0.1, started once for the whole session when a
    test first asks for it: a run attached to it (``run_cli(..., ray_head=ray_head)``) spares
    the start and stop of a private Ray instance (~10 s). Runs stay apart: each is a Ray job of
    its own, whose actors live in worker processes of that job only and end with it.
    ``ray start --block`` stops its own head's processes when terminated, where ``ray stop``
    would stop every Ray instance on the machine."""
    ray_cli = shutil.which("ray")
    if ray_cli is None:
        pytest.skip("the `ray` command line is not installed")
    # Short and private: Ray's unix sockets live under it (paths of at most ~107 characters), and
    # `ray start` records its head there, not in /tmp/ray where other runs would find it.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    port = free_port()
    with (temp_dir / "start.log").open("w") as log:
        head = subprocess.Popen([ray_cli, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
                                 f"--ray-client-server-port={free_port()}", "--num-cpus=2", "--include-dashboard=false",
                                 "--disable-usage-stats", f"--temp-dir={temp_dir}"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (temp_dir / "ray_current_cluster").exists():  # written once the head is up
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not start:\n{(temp_dir / 'start.log').read_text()}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()  # its reaper process then kills the head's process group
            head.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def digest(directory: Path) -> dict[str, str]:
    """The SHA-256 of every file under ``directory``, by relative path: equal digests mean an
    untouched directory."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


# EWC (a strategy with state) on PBBL (two phases, site counts summed between them), two rounds
# per stage: the continual tests read its Fisher messages, the resume test kills and resumes it,
# the PBBL test reads its counts and federation-wide AUC.
EWC_PBBL_OVERRIDES = ("size=smoke", "scenario.rounds_per_stage=2", "seed=1", "strategy=ewc", "task=debiasing",
                      "task.method=pbbl")


@pytest.fixture(scope="session")
def ewc_pbbl_run(tmp_path_factory, ray_head) -> Path:
    """One uninterrupted run with :data:`EWC_PBBL_OVERRIDES`."""
    run_dir = tmp_path_factory.mktemp("runs") / "ewc_pbbl"
    completed = run_cli(*EWC_PBBL_OVERRIDES, f"hydra.run.dir={run_dir}", ray_head=ray_head)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="session")
def fedavg_run(tmp_path_factory) -> Path:
    """One smoke run (FedAvg, seed 3) on a private Ray instance, shared by every module that
    compares against it: the one e2e run that starts Ray itself, so that both ways of running
    stay tested (the saved-config rerun compares an attached run against it)."""
    run_dir = tmp_path_factory.mktemp("runs") / "fedavg"
    completed = run_cli("size=smoke", "seed=3", f"hydra.run.dir={run_dir}")
    assert completed.returncode == 0, completed.stderr
    return run_dir


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


def write_segmentation_case(root, name, shape=(12, 10, 8), organ=range(2, 6), labels=(1,), affine=np.eye(4)):
    """A NIfTI volume with a bright box in the ``organ`` slices of its last axis, and its mask
    volume (the box, its slices labelled with ``labels`` in turn); the two file names."""
    rng = np.random.default_rng(len(name))
    mask = np.zeros(shape, dtype=np.int16)
    for k, label in zip(organ, np.resize(labels, len(organ))):
        mask[3:8, 2:7, k] = label
    image = rng.normal(size=shape).astype(np.float32) + 3.0 * (mask > 0)
    names = [f"{name}.nii.gz", f"{name}_seg.nii.gz"]
    for array, file in zip((image, mask), names):
        nib.save(nib.Nifti1Image(array, affine), root / file)
    return names


def write_manifest(root, rows, columns=("case", "grade", "site", "split"), name="manifest.csv"):
    """A CSV manifest ``name`` in ``root``."""
    path = root / name
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


# Every reply a site may send, by its metrics.jsonl event: record name -> record kind, as the
# protocol declares each message's reply.
DECLARED_REPLIES = {
    "site": IDENTIFY.reply,
    # a resumed run setting a site back to its checkpoint, or a DP withdrawal setting the
    # accountants back after the oracle's retraining: the site says who it is
    "resume": RESUME.reply,
    "data": CHECK_DATA.reply,
    "statistics": STATISTICS.reply,
    # with DP, the accountant's history (noise, sample rate, steps) comes back for resuming
    "train": TRAIN.reply,
    "evaluate": EVALUATE.reply,
    "matrix": EVALUATE.reply,
    "audit": AUDIT.reply,
    # a withdrawal's exchanges: unlearning and retraining (model + metrics [+ accountant]), evaluation, audit
    "withdrawal": {**UNLEARN.reply, **EVALUATE.reply, **AUDIT.reply},
    # SMD: the generator's weights and the site's prompt tokens
    "replay": TRAIN_GENERATOR.reply,
    # EWC: the diagonal Fisher of the model's parameters
    "fisher": FISHER.reply,
}
# The entries a config record may hold: a site's id, an accountant's history.
DECLARED_CONFIG = {RecordName.SITE: SiteIdentity.record_keys(), RecordName.ACCOUNTANT: AccountantHistory.record_keys()}
# Metrics that may be lists: score histograms (counts per bin) and ROC curves on a fixed grid.
DECLARED_LISTS = {r"hist-y\d-b\d": 100, r".*-roc": 31}


def undeclared_content(events: list[dict], model_shapes: dict[str, list[int]],
                       record_shapes: dict[str, dict[str, list[int]]] | None = None) -> list[str]:
    """Everything in the sites' replies that is not a declared record: arrays other than the
    model's own (or, for the records named in ``record_shapes``, other than those shapes: the
    generator, a prompt, a Fisher), list-valued metrics other than histograms and ROC curves,
    config entries other than a site's id and a DP accountant's history. Empty when only
    declared content left the sites. Events without content (failures, retries) are the
    server's own notes."""
    record_shapes = record_shapes or {}
    problems = []
    for event in (event for event in events if "content" in event):
        where = f"{event['event']} reply of site {event.get('site')}"
        declared = DECLARED_REPLIES.get(event["event"])
        if declared is None:
            problems.append(f"{where}: undeclared message")
            continue
        for name, record in event["content"].items():
            if declared.get(name) != record["kind"]:
                problems.append(f"{where}: undeclared {record['kind']} record {name!r}")
            elif record["kind"] == RecordKind.ARRAYS and record["shapes"] != record_shapes.get(name, model_shapes):
                problems.append(f"{where}: arrays are not the {name if name in record_shapes else 'model'}'s "
                                f"({sorted(record['shapes'])[:3]}...)")
            elif record["kind"] == RecordKind.METRICS:
                for key, length in record["lengths"].items():
                    allowed = [n for pattern, n in DECLARED_LISTS.items() if re.fullmatch(pattern, key)]
                    if length is not None and (not allowed or length > allowed[0]):
                        problems.append(f"{where}: list-valued metric {key!r} of length {length}")
            elif record["kind"] == RecordKind.CONFIG and (
                    set(record["values"]) != DECLARED_CONFIG.get(name)
                    or name == RecordName.SITE and SiteIdentity.from_record(record["values"]).site_id != event["site"]):
                problems.append(f"{where}: config entries {sorted(record['values'])}")
    return problems


def assert_only_declared_content_left_the_sites(run_dir: Path) -> None:
    """Check every reply of a finished run (``metrics.jsonl``) against :func:`undeclared_content`."""
    config = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True)
    task = build_task(config["task"])
    model = task.build_model()
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    record_shapes = {RecordName.FISHER: {k: list(v.shape) for k, v in model.named_parameters()}}
    if config["replay"]["source"] == "smd":
        generator = config["replay"]["generator"]
        architecture = GeneratorConfig(generator["channels"], generator["embed_dim"], generator["heads"],
                                       generator["steps"], generator["batch_size"], generator["lr"])
        network = build_generator(task, architecture)
        record_shapes[RecordName.GENERATOR] = {k: list(v.shape) for k, v in network.state_dict().items()}
        record_shapes[RecordName.PROMPT] = {RecordName.PROMPT: [generator["prompt_tokens"], generator["embed_dim"]]}
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {e["event"] for e in events} >= {"site", "data", "train", "matrix"}
    assert undeclared_content(events, shapes, record_shapes) == []
