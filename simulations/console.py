"""What the terminal shows: a progress bar over stages and rounds, and the closing summary."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from server.results import RunResult
from server.scenario import Scenario
from sites.data.recipes import PreparedManifest
from sites.errors import MedsitesError

from .formatting import fmt

console = Console(stderr=True)


class TimelineProgress:
    """One bar whose steps are the training rounds (of every phase) and the evaluation after each stage."""

    def __init__(self, scenario: Scenario, phases: int, progress: Progress, done: int = 0) -> None:
        self._scenario = scenario
        self._progress = progress
        total = sum(stage.rounds * phases for stage in scenario.stages) + len(scenario.stages)
        self._bar = progress.add_task("starting sites", total=total, completed=done)

    def on_round(self, stage: int, round_: int) -> None:
        self._progress.update(self._bar, advance=1,
                              description=f"stage {stage}/{len(self._scenario.stages)} · round {round_}")

    def on_stage(self, stage: int) -> None:
        self._progress.update(self._bar, advance=1,
                              description=f"stage {stage}/{len(self._scenario.stages)} · evaluated all sites")


@contextmanager
def timeline_progress(scenario: Scenario, phases: int, done: int = 0) -> Iterator[TimelineProgress]:
    """The bar, with ``done`` steps already taken (a resumed run)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        yield TimelineProgress(scenario, phases, progress, done)


def exit_with(error: MedsitesError) -> NoReturn:
    """Print ``error`` as one unwrapped line and exit with code 2, the code of every problem
    the user can fix."""
    console.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True)
    sys.exit(2)


def print_dataset(prepared: PreparedManifest, manifest: str) -> None:
    """The cases per site and class the preparer found, the cases it skipped, and its notes."""
    counts = prepared.counts()
    classes = list(dict.fromkeys([*prepared.class_names.values(), *(name for c in counts.values() for name in c)]))
    console.print("cases per site and class, before training:")
    table = Table()
    table.add_column("site")
    for name in [*classes, "total"] if len(classes) > 1 else classes:
        table.add_column(name, justify="right")
    for site, found in counts.items():
        cells = [str(found[name]) for name in classes]
        table.add_row(escape(site), *(cells + [str(sum(found.values()))] if len(classes) > 1 else cells))
    console.print(table)
    console.print(f"manifest: {escape(manifest)}", soft_wrap=True)
    for note in prepared.notes:
        console.print(escape(note), soft_wrap=True)
    if prepared.skipped:
        console.print(f"skipped {len(prepared.skipped)} bad case(s) (data_skip_bad=true):")
        for line in prepared.skipped:
            console.print(f"  {escape(line)}", soft_wrap=True)


def print_summary(result: RunResult, run_dir: str) -> None:
    """R[t, j] as a table, then the continual-learning summary."""
    scenario = result.scenario
    table = Table(title=escape(f"R[t, j]: {result.metric} after each stage ({scenario.schedule})"))
    table.add_column("stage")
    for site in scenario.sites:
        table.add_column(site.id + (" (held out)" if site.arrival is None else ""), justify="right")
    for t, row in enumerate(result.matrix, start=1):
        table.add_row(str(t), *(fmt(v) for v in row))
    console.print(table)
    summary = result.summary()
    console.print(
        f"memorizability {fmt(summary['memorizability'])}   generalizability {fmt(summary['generalizability'])}"
        f"   BWT {fmt(summary['bwt'])}   forgetting {fmt(summary['forgetting'])}"
    )
    for spent in summary.get("withdrawal_epsilon", []):
        console.print(f"epsilon before → after {spent['site']}'s withdrawal ({spent['method']}): " + "   ".join(
            f"{site} {fmt(e['before'])} → {fmt(e['after'])}" for site, e in spent["epsilon"].items()))
    if summary.get("pooled"):
        console.print("federation-wide: " + "   ".join(f"{k} {fmt(v)}" for k, v in summary["pooled"].items()))
    console.print(f"run directory: {run_dir}  (report.md, matrix.json, summary.json, metrics.jsonl)")
