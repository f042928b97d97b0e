"""Helpers the benchmark scripts share: their command line, composing the run config, timing subprocesses."""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from benchmarks import results

ROOT = Path(__file__).resolve().parent.parent


def seed_sweep_parser(description: str) -> argparse.ArgumentParser:
    """The command line of a benchmark that repeats runs over seeds: ``--seeds`` (default 0 1 2) and
    the Hydra overrides shared by every run, and where its results go (``--study``,
    ``--results-dir``); the benchmark adds its own options.

    Parameters
    ----------
    description
        The ``--help`` text, the benchmark module's docstring (printed as written).
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides shared by every run")
    results.add_arguments(parser)
    return parser


def compose_config(overrides: list[str]) -> dict:
    """The resolved run config for these overrides, as ``simulations.run`` would see it."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = compose(config_name="config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def timed(command: list[str]) -> tuple[float, str]:
    """Run a subprocess, which must succeed: (wall seconds, its stdout)."""
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    return elapsed, completed.stdout


def simulate(overrides: list[str], outputs: tuple[str, ...] = ("matrix.json",)) -> tuple[float, dict]:
    """Run ``python -m simulations.run`` in a fresh directory: (wall seconds, matrix.json), or
    with several ``outputs`` (run-directory files), (wall seconds, {file name: its content})
    where ``.json`` files are parsed and others read as text."""
    with tempfile.TemporaryDirectory() as tmp:
        seconds, _ = timed([sys.executable, "-m", "simulations.run", *overrides, f"hydra.run.dir={tmp}/run"])
        read = {name: (Path(tmp) / "run" / name).read_text() for name in outputs}
        parsed = {name: json.loads(text) if name.endswith(".json") else text for name, text in read.items()}
        return seconds, parsed["matrix.json"] if outputs == ("matrix.json",) else parsed


def median(values: list[float]) -> float:
    return statistics.median(values)
