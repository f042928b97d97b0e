"""The bad-input catalogue: every mistake we can name that a new user makes, tried through the
command line. Each must stop the run with a clear message naming the config key, site or file
(never a Python traceback), exit 2 (1 for Hydra's own refusals), and leave an earlier run
untouched.

Most are refused before anything starts; those run one after another in one interpreter
(``tests/helpers/cli_batch.py``) so the imports are paid once. Problems inside images only show when a site
reads them, in its Ray actor: each of those is a run of its own. Every case compares against
the shared earlier run (``fedavg_run``), hence the ``e2e`` mark on the whole module.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from conftest import ROOT, digest, run_cli, write_brats_case, write_manifest, write_segmentation_case
from PIL import Image

pytestmark = pytest.mark.e2e

# tests/plugins holds a user's classes, one of which is not a strategy.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "plugins")])}


class Case(NamedTuple):
    """What a new user does, the overrides that do it (``{data}``: the folder of bad files,
    ``{earlier}``: the earlier run, ``{file}``: a regular file), the words the message must
    hold, and the exit code."""

    does: str
    overrides: tuple[str, ...]
    words: tuple[str, ...]
    code: int = 2


REFUSED_BEFORE_START = [
    # the config: Hydra's own refusals
    Case("picks a task that does not exist", ("task=nope",), ("Could not find 'task/nope'",), 1),
    Case("picks a strategy that does not exist", ("strategy=nope",), ("Could not find 'strategy/nope'",), 1),
    Case("picks a scenario that does not exist", ("scenario=nope",), ("Could not find 'scenario/nope'",), 1),
    Case("sets a key that does not exist", ("scenario.bogus=1",), ("Could not override 'scenario.bogus'",), 1),
    Case("picks a tracking backend that does not exist", ("tracking=wandb",), ("Could not find 'tracking/wandb'",), 1),
    # the config: unknown keys added with +
    Case("adds an unknown scenario key", ("+scenario.bogus=1",), ("scenario: unknown keys ['bogus']",)),
    Case("adds an unknown privacy key", ("+privacy.foo=1",), ("privacy: unknown keys ['foo']",)),
    Case("adds an unknown task argument", ("+task.foo=1",), ("task: unknown keys ['foo'] (known: [",)),
    Case("adds an unknown strategy argument", ("+strategy.foo=1",),
         ("strategy: flwr.serverapp.strategy.FedAvg:", "unexpected keyword argument 'foo'")),
    # the config: bad values
    Case("asks for a negative number of rounds", ("scenario.rounds_per_stage=-1",),
         ("scenario.rounds_per_stage: must be greater than 0 (got -1)",)),
    Case("asks for an unknown task method", ("task=debiasing", "task.method=nope"),
         ("task.method: must be 'erm', 'pbbl' or 'bias_balanced_oracle' (got 'nope')",)),
    Case("writes a word for the learning rate", ("task.lr=abc",), ("task.lr: must be a valid number (got 'abc')",)),
    Case("writes a word for a task's scanner shift", ("task=debiasing", "task.source_shift.noise=abc"),
         ("task.source_shift.noise: must be a valid number (got 'abc')",)),
    Case("asks PGA for an unknown inner step", ("strategy=pga", "strategy.inner_step=adam"),
         ("strategy.inner_step: must be 'sgd' or 'normalized' (got 'adam')",)),
    Case("writes a word for a scanner setting", ("scenario.sites.0.scanner.noise=abc",),
         ("scenario.sites.0.scanner.noise: must be a valid number (got 'abc')",)),
    Case("gives a scanner negative noise", ("scenario.sites.1.scanner.noise=-1",),
         ("scenario.sites.1.scanner.noise: must be greater than or equal to 0 (got -1)",)),
    Case("gives a site no samples", ("+scenario.sites.0.n_train=0",),
         ("scenario.sites.0.n_train: must be greater than 0 (got 0)",)),
    Case("gives a negative seed", ("seed=-1",), ("seed: must be greater than or equal to 0 (got -1)",)),
    Case("names a tracking backend that does not exist", ("tracking.backend=wandb",),
         ("tracking.backend: must be 'none', 'tensorboard' or 'mlflow' (got 'wandb')",)),
    Case("gives a negative round timeout", ("backend.round_timeout=-5",),
         ("backend.round_timeout: must be greater than 0 (got -5)",)),
    Case("gives no CPUs to a site", ("backend.client_cpus=0",),
         ("backend.client_cpus: must be greater than 0 (got 0)",)),
    Case("gives a site a negative GPU share", ("backend.client_gpus=-1",),
         ("backend.client_gpus: must be greater than or equal to 0 (got -1)",)),
    Case("asks for a device that does not exist", ("device=tpu",),
         ("device: must be 'auto', 'cpu' or 'cuda' (got 'tpu')",)),
    Case("asks for a precision that does not exist", ("precision=fp16",),
         ("precision: must be 'fp32' or 'bf16' (got 'fp16')",)),
    Case("asks for bf16 on the CPU", ("device=cpu", "precision=bf16"), ("precision: bf16 autocasts on CUDA only",)),
    Case("evaluates on a split that does not exist", ("evaluate_split=train",),
         ("evaluate_split: must be 'test' or 'validation' (got 'train')",)),
    Case("chooses settings on a task without a validation split", ("task=debiasing", "evaluate_split=validation"),
         ("evaluate_split: DebiasingTask has no validation split",)),
    Case("adds a top-level key that does not exist", ("+foo=1",), ("config: unknown keys ['foo']",)),
    Case("adds a backend key that does not exist", ("+backend.workers=4",), ("backend: unknown keys ['workers']",)),
    Case("gives a crash probability above 1", ("faults.crash_prob=2",),
         ("faults.crash_prob: must be less than or equal to 1 (got 2)",)),
    Case("gives a negative bad-reply probability", ("faults.bad_reply_prob=-0.5",),
         ("faults.bad_reply_prob: must be greater than or equal to 0 (got -0.5)",)),
    Case("asks for a kind of bad reply that does not exist", ("faults.bad_reply=zeros",),
         ("faults.bad_reply: must be 'nan', 'shape' or 'scale' (got 'zeros')",)),
    Case("poisons a site that does not exist", ("faults.bad_reply_prob=1", "faults.bad_reply_sites=[B,X]"),
         ("faults.bad_reply_sites: unknown site 'X' (the scenario's sites: A, B, C, D, E)",)),
    Case("withdraws a site while sites reply with NaN", ("scenario=site_withdrawal", "faults.bad_reply_prob=0.1"),
         ("faults.bad_reply_prob: site withdrawals cannot run with simulated failures",)),
    Case("trains a site twice", ("scenario.stages=[[A],[B,A],[C],[D]]",),
         ("scenario.stages.1: site 'A' already trains in stage 1",)),
    Case("leaves a stage empty", ("scenario.stages=[[A],[],[C],[D]]",),
         ("scenario.stages.1: must hold at least 1 item(s) (got [])",)),
    Case("names a site that does not exist", ("scenario.stages=[[A],[B],[C],[X]]",),
         ("scenario.stages.3: unknown site 'X'",)),
    Case("sets privacy delta to 1", ("privacy=dp", "privacy.delta=1.0"),
         ("privacy.delta: must be less than 1 (got 1.0)",)),
    Case("sets no gradient clipping", ("privacy=dp", "privacy.max_grad_norm=0"),
         ("privacy.max_grad_norm: must be greater than 0 (got 0)",)),
    Case("sets zero DP noise", ("privacy=dp", "privacy.target_epsilon=null", "privacy.noise_multiplier=0"),
         ("privacy.noise_multiplier: must be greater than 0 (got 0)",)),
    Case("binds sites to deployment nodes in a simulation", ("deployment.site_nodes={A:5}",),
         ("deployment.site_nodes: binds sites to the node ids a deployment's SuperLink registered (flwr run); "
          "the simulation numbers its own nodes: leave it unset here",)),
    # the strategy
    Case("plugs in a class that is not a Strategy", ("strategy._target_=not_a_strategy.Averager",),
         ("strategy._target_: not_a_strategy.Averager is not a flwr.serverapp.strategy.Strategy subclass",)),
    Case("plugs in a class from the standard library", ("strategy._target_=collections.OrderedDict",),
         ("strategy._target_: collections.OrderedDict is not a flwr.serverapp.strategy.Strategy subclass",)),
    Case("plugs in a module that does not import", ("strategy._target_=my_strategies.Mine",),
         ("strategy._target_: cannot import 'my_strategies.Mine': ModuleNotFoundError: "
          "No module named 'my_strategies'",)),
    # the unlearning method
    Case("plugs in an unlearning method that does not import", ("unlearning._target_=my_methods.Forget",),
         ("unlearning._target_: cannot import 'my_methods.Forget': ModuleNotFoundError",)),
    Case("plugs in a strategy as the unlearning method", ("unlearning._target_=frozen_strategy.FrozenFedAvg",),
         ("unlearning._target_: frozen_strategy.FrozenFedAvg is not a server.unlearning.UnlearningMethod subclass",)),
    Case("gives an unlearning method an argument it does not take", ("unlearning=npo", "+unlearning.gamma=2"),
         ("unlearning: unknown keys ['gamma'] (known: ['beta', 'local_steps', 'lr', 'objective', 'rounds'])",)),
    Case("gives an unlearning method a bad value", ("unlearning=npo", "unlearning.beta=0"),
         ("unlearning.beta: must be greater than 0 (got 0)",)),
    # the output directory; under a file rather than in a read-only folder, since tests may run
    # as root, whom chmod does not stop
    Case("points the run directory under a file", ("hydra.run.dir={file}/run",),
         ("hydra.run.dir: cannot create {file}/run: Not a directory",)),
    Case("reuses the directory of an earlier run", ("hydra.run.dir={earlier}",),
         ("{earlier} already holds a run", "choose a new hydra.run.dir")),
    # a manifest of real images (chest radiographs as PNG, BraTS cases and segmentation volumes as NIfTI)
    Case("points to a manifest that does not exist", ("task=debiasing", "task.manifest={data}/nowhere.csv"),
         ("task.manifest: no such file: {data}/nowhere.csv",)),
    Case("writes a manifest without the label column",
         ("scenario=centralized", "task=debiasing", "task.manifest={data}/png/no_label.csv"),
         ("task.manifest: site A: manifest {data}/png/no_label.csv: missing columns ['label']",)),
    Case("lists an image that is not there",
         ("scenario=centralized", "task=debiasing", "task.manifest={data}/png/missing_image.csv"),
         ("task.manifest: site A: manifest {data}/png/missing_image.csv, row 3: "
          "image not found: {data}/png/gone.png",)),
    Case("labels an image with a class the task does not have",
         ("scenario=centralized", "task=debiasing", "task.manifest={data}/png/label_2.csv"),
         ("task.manifest: site A: manifest {data}/png/label_2.csv, row 3: label must be 0 or 1 (got '2')",)),
    Case("leaves a site out of the manifest", ("task=debiasing", "task.manifest={data}/png/corrupt.csv"),
         ("task.manifest: site B: manifest {data}/png/corrupt.csv has no rows for site 'B'",)),
    Case("grades a case with a grade the task does not have",
         ("scenario=centralized", "task=grading", "task.manifest={data}/brats/bad_grade.csv"),
         ("task.manifest: site A: manifest {data}/brats/bad_grade.csv, row 2, case case0: grade must be one of "
          "['LGG', 'HGG'] (got 'GBM')",)),
    Case("leaves out a modality of a case",
         ("scenario=centralized", "task=grading", "task.manifest={data}/brats/missing_t1ce.csv"),
         ("task.manifest: site A: manifest {data}/brats/missing_t1ce.csv, row 2, case no_t1ce: missing modality "
          "t1ce",)),
    Case("gives a site too few cases of a grade to split",
         ("scenario=centralized", "task=grading", "task.manifest={data}/brats/two_lgg.csv"),
         ("task.manifest: site A: manifest {data}/brats/two_lgg.csv, site 'A': 2 row(s) of LGG, fewer than the 3 "
          "a site needs (one for each split: train, test, validation)",)),
    Case("lists a mask that is not there",
         ("scenario=centralized", "task.manifest={data}/nifti/missing_mask.csv"),
         ("task.manifest: site A: manifest {data}/nifti/missing_mask.csv, row 3: mask not found: "
          "{data}/nifti/gone_seg.nii.gz",)),
]

REFUSED_BY_A_SITE = [
    Case("lists a PNG that is not a PNG",
         ("scenario=centralized", "task=debiasing", "task.manifest={data}/png/corrupt.csv"),
         ("site A: ValueError: manifest {data}/png/corrupt.csv, row 2: cannot read {data}/png/corrupt.png",)),
    Case("lists a NIfTI volume cut short",
         ("scenario=centralized", "task=grading", "task.manifest={data}/brats/truncated.csv"),
         ("site A: ValueError: manifest {data}/brats/truncated.csv, row 2, case truncated: cannot read "
          "{data}/brats/truncated/truncated_t2.nii.gz",)),
    Case("lists a volume full of NaN",
         ("scenario=centralized", "task=grading", "task.manifest={data}/brats/nan.csv"),
         ("site A: ValueError: manifest {data}/brats/nan.csv, row 2, case nan: {data}/brats/nan/nan_flair.nii.gz "
          "is constant or not finite",)),
    Case("draws a mask with no foreground",
         ("scenario=centralized", "task.manifest={data}/nifti/empty_mask.csv"),
         ("site A: ValueError: manifest {data}/nifti/empty_mask.csv, row 2: {data}/nifti/empty_seg.nii.gz has no "
          "foreground",)),
    Case("asks DP for an epsilon no noise can reach",
         ("scenario=centralized", "privacy=dp", "privacy.target_epsilon=1e-7"),
         ("site A: ConfigError: privacy.target_epsilon: 1e-07 cannot be reached in 2 steps",)),
]


def _fill(text: str, places: dict[str, Path]) -> str:
    for name, path in places.items():
        text = text.replace("{" + name + "}", str(path))
    return text


def _write_pngs(folder: Path) -> None:
    """Eight radiographs of site A (labels and bias in every combination, half of them test)
    and one file named .png that holds garbage, each under a manifest of its own mistake."""
    folder.mkdir()
    rows = []
    for i in range(8):
        pixels = np.random.default_rng(i).integers(0, 255, size=(20, 24), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
        rows.append([f"img{i}.png", str(i % 2), str(i // 2 % 2), "A", "test" if i >= 4 else "train"])
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    header = ["path", "label", "bias", "site", "split"]
    manifests = {
        "corrupt": [["corrupt.png", *rows[0][1:]], *rows[1:]],
        "missing_image": [rows[0], ["gone.png", *rows[1][1:]], *rows[2:]],
        "label_2": [rows[0], [rows[1][0], "2", *rows[1][2:]], *rows[2:]],
    }
    for name, manifest_rows in manifests.items():
        write_manifest(folder, manifest_rows, columns=header, name=f"{name}.csv")
    write_manifest(folder, [[r[0], *r[2:]] for r in rows],
                   columns=[c for c in header if c != "label"], name="no_label.csv")


def _write_brats(folder: Path) -> None:
    """Eight good BraTS-style cases of site A, plus one case per mistake (a truncated volume,
    a volume of NaN, a missing modality), each first in a manifest of its own."""
    folder.mkdir()
    rows = []
    for i, split in enumerate(["train"] * 4 + ["validation"] * 2 + ["test"] * 2):
        write_brats_case(folder, f"case{i}")
        rows.append([f"case{i}", "HGG" if i % 2 else "LGG", "A", split])
    write_brats_case(folder, "truncated")
    volume = folder / "truncated" / "truncated_t2.nii.gz"
    volume.write_bytes(volume.read_bytes()[:60])
    write_brats_case(folder, "nan", override={"flair": np.full((12, 10, 8), np.nan)})
    write_brats_case(folder, "no_t1ce", skip=("t1ce",))
    manifests = {name: [[name, *rows[0][1:]], *rows[1:]] for name in ("truncated", "nan")}
    manifests["missing_t1ce"] = [["no_t1ce", *rows[0][1:]], *rows[1:]]
    manifests["bad_grade"] = [[rows[0][0], "GBM", *rows[0][2:]], *rows[1:]]
    for name, manifest_rows in manifests.items():
        write_manifest(folder, manifest_rows, name=f"{name}.csv")
    write_manifest(folder, [row[:3] for row in rows if row[0] not in ("case0", "case2")],
                   columns=("case", "grade", "site"), name="two_lgg.csv")


def _write_nifti(folder: Path) -> None:
    """Three segmentation cases of site A (the last one the test split) and a case whose mask
    is empty, first in a manifest; another manifest lists a mask that is not there."""
    folder.mkdir()
    rows = [[*write_segmentation_case(folder, f"case{i}"), "A", "test" if i == 2 else "train"] for i in range(3)]
    columns = ("image", "mask", "site", "split")
    write_manifest(folder, [[*write_segmentation_case(folder, "empty", labels=(0,)), "A", "train"], *rows[1:]],
                   columns=columns, name="empty_mask.csv")
    write_manifest(folder, [rows[0], [rows[1][0], "gone_seg.nii.gz", "A", "train"], rows[2]], columns=columns,
                   name="missing_mask.csv")


@pytest.fixture(scope="module")
def places(tmp_path_factory, fedavg_run) -> dict[str, Path]:
    """The paths the cases' overrides name: bad files, the earlier run, a regular file."""
    data = tmp_path_factory.mktemp("bad_data")
    _write_pngs(data / "png")
    _write_brats(data / "brats")
    _write_nifti(data / "nifti")
    (data / "a_file").write_text("not a directory")
    return {"data": data, "earlier": fedavg_run, "file": data / "a_file"}


def _arguments(case: Case, places: dict[str, Path], run_dir: Path) -> list[str]:
    overrides = [_fill(override, places) for override in case.overrides]
    if not any(override.startswith("hydra.run.dir=") for override in overrides):
        overrides.append(f"hydra.run.dir={run_dir}")
    return ["size=smoke", *overrides]


def _check(case: Case, places: dict[str, Path], code: int, output: str) -> None:
    assert code == case.code, output
    assert "Traceback" not in output
    for words in case.words:
        assert _fill(words, places) in output


@pytest.fixture(scope="module")
def refused(tmp_path_factory, places) -> dict[str, dict]:
    """Every case of ``REFUSED_BEFORE_START``, run through ``tests/helpers/cli_batch.py``: by case, its exit
    code, its output, the earlier run's digest after it, and its own run directory."""
    runs = tmp_path_factory.mktemp("refused")
    run_dirs = [runs / str(i) for i in range(len(REFUSED_BEFORE_START))]
    arguments = [_arguments(case, places, run_dir) for case, run_dir in zip(REFUSED_BEFORE_START, run_dirs)]
    before = digest(places["earlier"])
    completed = subprocess.run([sys.executable, "-m", "helpers.cli_batch", str(places["earlier"]),
                                json.dumps(arguments)], cwd=ROOT, capture_output=True, text=True, env=ENV,
                               timeout=600)
    assert completed.returncode == 0, completed.stderr
    results = [json.loads(line) for line in completed.stdout.splitlines()]
    assert len(results) == len(REFUSED_BEFORE_START), completed.stderr
    return {case.does: {**result, "before": before, "run_dir": run_dir}
            for case, result, run_dir in zip(REFUSED_BEFORE_START, results, run_dirs)}


@pytest.mark.parametrize("case", REFUSED_BEFORE_START,
                         ids=[case.does.replace(" ", "_") for case in REFUSED_BEFORE_START])
def test_refused_before_anything_starts(refused, places, case):
    result = refused[case.does]
    _check(case, places, result["code"], result["output"])
    assert result["watched"] == result["before"]
    assert not (result["run_dir"] / "config.yaml").exists()  # nothing written: the directory was never claimed


# Each case is a run of its own: the first runs by default, the others are slow.
@pytest.mark.parametrize("case", [
    pytest.param(case, id=case.does.replace(" ", "_"), marks=[pytest.mark.slow] if i else [])
    for i, case in enumerate(REFUSED_BY_A_SITE)])
def test_refused_when_a_site_reads_its_data(places, ray_head, tmp_path, case):
    before = digest(places["earlier"])
    completed = run_cli(*_arguments(case, places, tmp_path / "run"), env=ENV, ray_head=ray_head)
    _check(case, places, completed.returncode, completed.stdout + completed.stderr)
    assert digest(places["earlier"]) == before
