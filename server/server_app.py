"""The Flower ServerApp: runs the scenario timeline with any Flower strategy.

At each stage the strategy sees, through :class:`~server.site_grid.SiteGrid`, only that
stage's sites and runs its own rounds (``Strategy.start``), once per phase of the task (most
tasks have one; a phase may first need counts summed across the present sites). After the
stage, every site of the scenario (trained, not yet arrived, held out) evaluates the global
model, filling R[t, j]. With a replay source (``replay=smd|real``) the strategy is handed
samples of the earlier sites before each stage, and the stage's sites teach the source after it
(:mod:`server.replay`).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MessageType
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Strategy

from sites import seeding
from sites.replay import pack_domains
from sites.tasks import Task

from .discovery import check_site_data, discover_sites
from .messages import to_every_node
from .privacy_audit import audit_result
from .replay import ReplayConfig, ReplaySource, build_replay_source
from .results import RunResult
from .run_log import RunLog
from .scenario import Scenario, Stage
from .statistics import sum_counts
from .site_grid import SiteGrid
from .unlearning import UnlearningConfig, Unlearner
from .update_store import UpdateStore
from .withdrawal import WithdrawalEvent


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
    dp_delta : float or None
        The delta of the sites' DP guarantee (``None`` without DP), for the privacy audit.
    unlearning : UnlearningConfig
        How a withdrawing site is unlearned (the scenario's withdrawals say who and when).
    replay : ReplayConfig
        Where replay of earlier sites comes from, for strategies that train on it.
    """

    scenario: Scenario
    task: Task
    strategy: Strategy
    seed: int
    run_dir: Path
    round_timeout: float = 3600.0
    dp_delta: float | None = None
    unlearning: UnlearningConfig = field(default_factory=UnlearningConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)

    @property
    def planned_steps(self) -> dict[str, int]:
        """Site id -> local steps the timeline has it take (0 for held-out sites)."""
        per_round = sum(self.task.phase_steps(phase.name) for phase in self.task.phases)
        return {site.id: self.scenario.training_rounds(site.id) * per_round for site in self.scenario.sites}


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
        result = RunResult(scenario, plan.task.primary_metric)
        try:
            site_of_node = discover_sites(grid, scenario.site_ids, listener=log.listener("site"))
            check_site_data(grid, site_of_node, scenario.site_ids, log.listener(), plan.round_timeout)
            everyone = SiteGrid(grid, site_of_node, scenario.site_ids, log.listener("matrix"))
            initial = arrays = initial_arrays(plan.task, plan.seed)
            # FedEraser calibrates from every stored update; other methods need none.
            keep_updates = scenario.withdrawals and plan.unlearning.method == "federaser"
            updates = UpdateStore(plan.run_dir / "updates") if keep_updates else None
            source = build_replay_source(plan.replay, plan.task, plan.seed)
            for stage in scenario.stages:
                log.stage = stage.index
                view = SiteGrid(grid, site_of_node, stage.sites, log.listener(),
                                recorder=None if updates is None else updates.record)
                if source is not None:
                    self._hand_replay(source, stage)
                arrays, statistics = self._train_stage(view, stage, arrays)
                torch.save(arrays.to_torch_state_dict(), plan.run_dir / "checkpoints" / f"stage_{stage.index}.pt")
                if source is not None:  # the stage's sites teach the source while they are present
                    source.learn(SiteGrid(grid, site_of_node, stage.sites, log.listener("replay")), plan.round_timeout)
                    source.save(plan.run_dir / "checkpoints" / "replay.pt")
                site_metrics = self._evaluate_everyone(everyone, arrays, stage.index)
                result.add_stage(site_metrics, statistics, plan.task.pool_metrics(site_metrics, statistics))
                for withdrawal in scenario.withdrawals_after(stage.index):
                    event = self._withdrawal_event(grid, site_of_node, log, initial, updates)
                    arrays, record = event.run(withdrawal, arrays)
                    result.withdrawals.append(record)
                if self.on_stage is not None:
                    self.on_stage(stage.index)
            if scenario.audit is not None:
                result.audit = self._audit(grid, site_of_node, arrays, log)
            if source is not None:
                result.replay = source.summary()
        finally:
            log.close()
        result.write(plan.run_dir)
        self.result = result
        return result

    def _hand_replay(self, source: ReplaySource, stage: Stage) -> None:
        """Give the strategy samples of every site that trained before ``stage`` and is not in it."""
        earlier = [site for site in self.plan.scenario.seen_by(stage.index - 1) if site not in stage.sites]
        replay = source.replay(earlier)
        self.plan.strategy.set_replay(pack_domains(replay) if replay else None, self.plan.task)

    def _train_stage(self, view: SiteGrid, stage: Stage,
                     arrays: ArrayRecord) -> tuple[ArrayRecord, dict[str, dict[str, float]]]:
        """Run every phase of the task as the strategy's own rounds; return the new global
        arrays and, per phase that needed them, the summed site statistics."""
        statistics = {}
        for phase in self.plan.task.phases:
            config = {"stage": stage.index, "phase": phase.name}
            if phase.statistics:
                totals = self._sum_statistics(view, arrays, config)
                statistics[phase.name] = totals
                config.update(self.plan.task.phase_config(phase.name, totals))
            outcome = self.plan.strategy.start(
                grid=view,
                initial_arrays=arrays,
                num_rounds=stage.rounds,
                timeout=self.plan.round_timeout,
                train_config=ConfigRecord(config),
                evaluate_config=ConfigRecord(dict(config)),
            )
            if len(outcome.arrays) > 0:
                arrays = outcome.arrays
        return arrays, statistics

    def _sum_statistics(self, view: SiteGrid, arrays: ArrayRecord, config: dict) -> dict[str, float]:
        """Ask the present sites for their counts and add them up: counts cross the wire, samples never."""
        replies = view.send_and_receive(to_every_node(view, f"{MessageType.QUERY}.statistics", config, arrays=arrays),
                                        timeout=self.plan.round_timeout)
        return sum_counts([reply.content["statistics"] for reply in replies])

    def _audit(self, grid: Grid, site_of_node: dict[int, str], arrays: ArrayRecord, log: RunLog) -> dict:
        """Membership inference at every site that trained, against the final model."""
        scenario, planned_steps = self.plan.scenario, self.plan.planned_steps
        site_metrics = {}
        for site in scenario.seen_by(len(scenario.stages)):  # one at a time: each trains its own reference models
            view = SiteGrid(grid, site_of_node, [site], log.listener("audit"))
            config = {"reference-models": scenario.audit.reference_models, "reference-steps": planned_steps[site]}
            (reply,) = view.send_and_receive(to_every_node(view, f"{MessageType.QUERY}.audit", config, arrays=arrays),
                                             timeout=self.plan.round_timeout)
            site_metrics[site] = dict(reply.content["audit"])
        return audit_result(site_metrics, self.plan.dp_delta)

    def _withdrawal_event(self, grid: Grid, site_of_node: dict[int, str], log: RunLog, initial: ArrayRecord,
                          updates: UpdateStore | None) -> WithdrawalEvent:
        plan = self.plan

        def view(sites: list[str]) -> SiteGrid:
            return SiteGrid(grid, site_of_node, sites, log.listener("withdrawal"))

        unlearner = Unlearner(plan.unlearning, plan.scenario, view, self._train_stage, initial,
                              plan.run_dir / "checkpoints", updates, plan.task.phase_steps, plan.round_timeout)
        return WithdrawalEvent(unlearner, plan.scenario, view, plan.task.primary_metric, plan.run_dir / "checkpoints",
                               plan.round_timeout)

    def _evaluate_everyone(self, everyone: SiteGrid, arrays: ArrayRecord, stage: int) -> dict[str, dict]:
        replies = everyone.send_and_receive(
            to_every_node(everyone, MessageType.EVALUATE, {"stage": stage}, arrays=arrays), timeout=self.plan.round_timeout)
        return {everyone.site_of_node(reply.metadata.src_node_id): dict(reply.content["metrics"])
                for reply in replies}


def build_server_app(timeline: Timeline) -> ServerApp:
    """Wrap a timeline in a Flower ServerApp."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        timeline.run(grid)

    return app
