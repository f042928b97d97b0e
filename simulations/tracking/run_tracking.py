"""Feeds a :class:`~.tracker.Tracker` from a run: the events of ``metrics.jsonl`` as they are
written, then the summary and the figures once the report is out.

What is logged, by tag (step):

- ``train/<site>/<metric>``, ``evaluate/<site>/<metric>`` (round): every scalar metric a site
  replied in a training or evaluation round of the strategy (``train_loss``, ...);
- ``R/<site>`` (stage): R[t, j], the primary metric of site j after stage t, and
  ``matrix/<site>/<metric>`` (stage) the other scalar metrics of that evaluation;
- ``summary/<key>``: ``summary.json``'s numbers, its per-stage curves at their stage and the
  rest at the last stage (nested keys joined with ``/``);
- every PNG the reports wrote into the run directory (R heatmap, site curves, replay samples,
  privacy-audit ROC, ...).
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from server.results import RunResult
from server.run_log import Event

from ..config import Tracking
from .tracker import Tracker

# Events of the strategy's rounds, logged per round.
ROUND_EVENTS = (Event.TRAIN, Event.EVALUATE)


def numbers(tree: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The numbers of a nested mapping, keyed ``prefix/key/subkey``; lists, strings and ``None`` are left out."""
    found = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            found.update(numbers(value, f"{prefix}/{key}"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found[f"{prefix}/{key}"] = value
    return found


class RunTracking:
    """What a run logs to its tracker.

    Parameters
    ----------
    tracker : Tracker
        Where it goes.
    metric : str
        The task's primary metric, the one in R.
    """

    def __init__(self, tracker: Tracker, metric: str) -> None:
        self.tracker, self.metric = tracker, metric

    def on_event(self, event: dict) -> None:
        """A ``metrics.jsonl`` event (:class:`~server.run_log.RunLog`'s ``on_event``)."""
        kind, site = event["event"], event.get("site")
        if kind in ROUND_EVENTS:
            self.tracker.log_scalars(event["round"], numbers(event["metrics"], f"{kind}/{site}"))
        elif kind == Event.MATRIX:
            others = {key: value for key, value in event["metrics"].items() if key != self.metric}
            self.tracker.log_scalars(event["stage"], {f"R/{site}": event["metrics"][self.metric],
                                                      **numbers(others, f"matrix/{site}")})

    def log_results(self, result: RunResult, run_dir: Path) -> None:
        """The summary's numbers and the report's figures, once the report is written."""
        summary = result.summary()
        per_stage = summary.pop("per_stage")
        for entry in per_stage:
            self.tracker.log_scalars(entry["stage"], numbers({k: v for k, v in entry.items() if k != "stage"},
                                                             "summary"))
        final = {key: value for key, value in summary.items() if key not in per_stage[-1]}
        self.tracker.log_scalars(len(per_stage), numbers(final, "summary"))
        for path in sorted(run_dir.glob("*.png")):
            self.tracker.log_image(path)


def build_tracker(backend: str, run_dir: Path) -> Tracker:
    """The tracker of ``tracking.backend`` (not ``none``), writing into ``run_dir``."""
    # Imported here: each library takes seconds to import, and tracking=none needs neither.
    if backend == "tensorboard":
        from .tensorboard_tracker import TensorBoardTracker
        return TensorBoardTracker(run_dir / "tensorboard")
    from .mlflow_tracker import MLflowTracker
    return MLflowTracker(run_dir / "mlflow", run_name=run_dir.name)


@contextmanager
def track(config: Tracking, run_dir: Path, metric: str) -> Iterator[RunTracking | None]:
    """The run's tracking (``None`` with ``tracking=none``), closed when the block ends; a run
    that stops with an error is closed as failed.

    Parameters
    ----------
    config : Tracking
        The ``tracking`` config node.
    run_dir : Path
        The run directory, where the tracker writes.
    metric : str
        The task's primary metric.
    """
    if config.backend == "none":
        yield None
        return
    tracking = RunTracking(build_tracker(config.backend, run_dir), metric)
    finished = False
    try:
        yield tracking
        finished = True
    finally:
        tracking.tracker.close(finished)
