"""The Flower ServerApp: runs the scenario timeline with any Flower strategy.

At each stage the strategy sees, through :class:`~server.site_grid.SiteGrid`, only that
stage's sites and runs its own rounds (``Strategy.start``); after the stage, every site of the
scenario (trained, not yet arrived, held out) evaluates the global model, filling R[t, j].
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Strategy

from sites import seeding
from sites.tasks import Task

from .discovery import check_site_data, discover_sites
from .results import RunResult
from .run_log import RunLog
from .scenario import Scenario
from .site_grid import SiteGrid


@dataclass
class RunPlan:
    """Everything a run needs, already validated.

    Parameters
    ----------
    scenario : Scenario
        The timeline.
    task : Task
        The task (the server uses it to build the initial model and name the metric).
    strategy : Strategy
        Any Flower strategy; one instance serves every stage, so its state carries over.
    seed : int
        The run's top-level seed.
    run_dir : Path
        Where results, checkpoints and ``metrics.jsonl`` go.
    round_timeout : float
        Seconds to wait for a round's replies.
    """

    scenario: Scenario
    task: Task
    strategy: Strategy
    seed: int
    run_dir: Path
    round_timeout: float = 3600.0


def initial_arrays(task: Task, seed: int) -> ArrayRecord:
    """The global model before any training, the same for every run with this seed."""
    torch.manual_seed(seeding.stream_seed(seed, seeding.MODEL_INIT))
    return ArrayRecord(task.build_model().state_dict())


class Timeline:
    """Runs a :class:`RunPlan` on a grid; the outcome lands in :attr:`result`.

    Parameters
    ----------
    plan : RunPlan
        What to run.
    on_round : callable, optional
        Called with ``(stage, round)`` after each training round.
    on_stage : callable, optional
        Called with ``stage`` after each stage's evaluation.
    """

    def __init__(self, plan: RunPlan, on_round: Callable[[int, int], None] | None = None,
                 on_stage: Callable[[int], None] | None = None) -> None:
        self.plan = plan
        self.on_round = on_round
        self.on_stage = on_stage
        self.result: RunResult | None = None

    def run(self, grid: Grid) -> RunResult:
        plan, scenario = self.plan, self.plan.scenario
        (plan.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        log = RunLog(plan.run_dir / "metrics.jsonl", on_round=self.on_round)
        try:
            site_of_node = discover_sites(grid, scenario.site_ids)
            check_site_data(grid, site_of_node, scenario.site_ids, log.listener("data"), plan.round_timeout)
            everyone = SiteGrid(grid, site_of_node, scenario.site_ids, log.listener("matrix"))
            arrays = initial_arrays(plan.task, plan.seed)
            rows, site_metrics = [], []
            for stage in scenario.stages:
                log.stage = stage.index
                view = SiteGrid(grid, site_of_node, stage.sites, log.listener())
                stage_config = ConfigRecord({"stage": stage.index})
                outcome = plan.strategy.start(
                    grid=view,
                    initial_arrays=arrays,
                    num_rounds=stage.rounds,
                    timeout=plan.round_timeout,
                    train_config=stage_config,
                    evaluate_config=ConfigRecord(dict(stage_config)),
                )
                if len(outcome.arrays) > 0:
                    arrays = outcome.arrays
                torch.save(arrays.to_torch_state_dict(), plan.run_dir / "checkpoints" / f"stage_{stage.index}.pt")
                metrics = self._evaluate_everyone(everyone, arrays, stage.index)
                site_metrics.append(metrics)
                rows.append([metrics[site][plan.task.primary_metric] for site in scenario.site_ids])
                if self.on_stage is not None:
                    self.on_stage(stage.index)
        finally:
            log.close()
        self.result = RunResult(scenario, plan.task.primary_metric, np.array(rows), site_metrics)
        self.result.write(plan.run_dir)
        return self.result

    def _evaluate_everyone(self, everyone: SiteGrid, arrays: ArrayRecord, stage: int) -> dict[str, dict]:
        messages = [
            Message(RecordDict({"arrays": arrays, "config": ConfigRecord({"stage": stage})}),
                    dst_node_id=node, message_type=MessageType.EVALUATE)
            for node in everyone.get_node_ids()
        ]
        replies = everyone.send_and_receive(messages, timeout=self.plan.round_timeout)
        return {everyone.site_of_node(reply.metadata.src_node_id): dict(reply.content["metrics"])
                for reply in replies}


def build_server_app(timeline: Timeline) -> ServerApp:
    """Wrap a timeline in a Flower ServerApp."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        timeline.run(grid)

    return app
