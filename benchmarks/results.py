"""Benchmark results as data: one CSV per area under ``results/``, one row per measured figure.

Every benchmark script appends the figures of each run it makes (one seed) to its area's file
through a :class:`Recorder`; ``python -m benchmarks.render_docs`` turns those files into the
docs' tables. A row is one figure of one run (``statistic`` ``value``) or, for figures whose
record kept only the aggregate (transcribed from the measurement record), a ``mean``, ``std``
or ``median`` over the seeds listed in ``seed``. Columns (docs/results.md, "The data"):

- ``study``: the set of runs a table summarises (``--study``; default the script's name);
- ``seed``, ``statistic``: the run's seed, or the seeds an aggregate is over, space-separated;
- ``method``, ``variant``, ``scenario``, ``task``: what ran; ``variant`` holds the Hydra
  overrides that tell apart runs of one method, e.g. ``task.bias_ratio=0.95``;
- ``metric``, ``split_or_site``, ``value``: the figure;
- ``config_hash``: :func:`config_hash` of the resolved run config (``unrecorded`` if unknown);
- ``date`` (UTC), ``machine`` (:func:`machine`), ``source`` (the command, or the record it was
  transcribed from).
"""

import argparse
import csv
import datetime
import hashlib
import importlib.metadata
import json
import numbers
import os
import platform
from collections.abc import Mapping
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
COLUMNS = ("study", "seed", "statistic", "method", "variant", "scenario", "task", "metric", "split_or_site",
           "value", "config_hash", "date", "machine", "source")
PACKAGES = ("torch", "flwr", "ray", "monai", "opacus", "diffusers")


def config_hash(config: Mapping) -> str:
    """The first 12 hex digits of the SHA-256 of ``config`` as canonical JSON (keys sorted).

    Parameters
    ----------
    config
        The resolved run config (plain containers, as :func:`benchmarks.common.compose_config`
        returns it).
    """
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def machine() -> str:
    """This machine in one line: CPU model and core count, Python and the stack's versions."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return "; ".join([f"{model} ({os.cpu_count()} cores)", f"Python {platform.python_version()}", *versions])


def run_columns(config: Mapping) -> dict[str, str]:
    """The ``scenario`` and ``task`` columns of a run from its resolved config.

    Parameters
    ----------
    config
        The resolved run config.
    """
    task = config["task"]["_target_"].rsplit(".", 1)[-1].removesuffix("Task").lower()
    return {"scenario": config["scenario"]["name"], "task": task}


def variant_of(overrides: list[str]) -> str:
    """The ``variant`` column: ``overrides`` less those the other columns hold (scenario, task, seed).

    Parameters
    ----------
    overrides
        The Hydra overrides a benchmark added to a run's method.
    """
    return " ".join(o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in ("scenario", "task", "seed"))


def read(area: str, directory: Path = RESULTS_DIR) -> list[dict[str, str]]:
    """Every row of ``<directory>/<area>.csv``, in file order.

    Parameters
    ----------
    area
        The file's name without ``.csv`` (``continual``, ``privacy``, ...).
    directory
        Where the results files are.
    """
    path = directory / f"{area}.csv"
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames}, expected {list(COLUMNS)}")
        return list(reader)


def append(area: str, rows: list[Mapping[str, object]], directory: Path = RESULTS_DIR) -> Path:
    """Append ``rows`` (each with every column of :data:`COLUMNS`) to ``<directory>/<area>.csv``,
    writing the header first if the file is new.

    Parameters
    ----------
    area
        The file's name without ``.csv``.
    rows
        The rows to add, as mappings from column to value.
    directory
        Where the results files are; created if missing.
    """
    for row in rows:
        if set(row) != set(COLUMNS):
            raise ValueError(f"a results row needs exactly the columns {list(COLUMNS)}, got {sorted(row)}")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{area}.csv"
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerows(rows)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark takes for its results: ``--study`` and ``--results-dir``.

    Parameters
    ----------
    parser
        The benchmark's command line.
    """
    parser.add_argument("--study", help="label of this set of runs in the results file (default: the script's name)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help="where the results CSV files are (default: results/ at the repository root)")


class Recorder:
    """Appends one benchmark's per-run figures to its area's results file.

    Parameters
    ----------
    area
        The results file, without ``.csv``.
    study
        The label of this set of runs.
    source
        The command that measured them (the script's module).
    directory
        Where the results files are.
    """

    def __init__(self, area: str, study: str, source: str, directory: Path = RESULTS_DIR):
        self.area, self.study, self.source, self.directory = area, study, source, directory
        self.machine = machine()

    @classmethod
    def from_args(cls, args: argparse.Namespace, area: str, source: str) -> "Recorder":
        """A recorder for the options :func:`add_arguments` added.

        Parameters
        ----------
        args
            The parsed command line.
        area
            The results file, without ``.csv``.
        source
            The script's module (``benchmarks.continual``); also the default study.
        """
        return cls(area, args.study or source.removeprefix("benchmarks."), source, args.results_dir)

    def record(self, config: Mapping | None, figures: Mapping[str, float | str | None], *, seed: int | str = "",
               method: str = "", variant: str = "", split_or_site: str = "", **columns: str) -> None:
        """Append one run's figures, one row each; ``None`` figures (undefined) are left out.

        Parameters
        ----------
        config
            The resolved config of the run: hashed, and its scenario and task fill those columns
            (:func:`run_columns`). ``None`` for a measurement outside a run (e.g. a step's cost).
        figures
            Metric name -> value.
        seed, method, variant, split_or_site
            The run's columns (see the module's docstring).
        **columns
            ``scenario`` and ``task`` where there is no config to read them from, or to name
            them otherwise.
        """
        date = datetime.datetime.now(datetime.UTC).date().isoformat()
        named = {"scenario": "", "task": "", **(run_columns(config) if config is not None else {}), **columns}
        common = {"study": self.study, "seed": seed, "statistic": "value", "method": method, "variant": variant,
                  **named, "split_or_site": split_or_site,
                  "config_hash": config_hash(config) if config is not None else "none",
                  "date": date, "machine": self.machine, "source": self.source}
        append(self.area, [{**common, "metric": metric, "value": _text(value)}
                           for metric, value in figures.items() if value is not None], self.directory)


def _text(value: float | str) -> str:
    """A figure as stored: integers as integers, other numbers at full precision (``repr``), text as is."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    return str(int(value)) if isinstance(value, numbers.Integral) else repr(float(value))
