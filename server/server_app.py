"""The Flower ServerApp: runs the scenario timeline with any Flower strategy.

At each stage the strategy sees, through :class:`~server.site_grid.SiteGrid`, only that
stage's sites and runs its own rounds (``Strategy.start``), once per phase of the task (most
tasks have one; a phase may first need counts summed across the present sites): the
:class:`~server.stage_runner.StageRunner`, which withdrawals use too, told to save the
timeline's checkpoint as it goes. After the stage, every site of the scenario (trained, not
yet arrived, held out) evaluates the global model, filling R[t, j]. With a replay source
(``replay=smd|real``) the strategy is handed
samples of the earlier sites before each stage, and the stage's sites teach the source after it
(:mod:`server.replay`).
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from flwr.app import ArrayRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Strategy

from sites import seeding
from sites.errors import MedsitesError
from sites.faults import FaultConfig
from sites.protocol import AUDIT, EVALUATE, AuditQuery, AuditReply, EvaluateConfig, RecordName, request
from sites.replay import pack_domains
from sites.tasks import Task
from strategies.capabilities import ReplayConsumer, capable

from .checkpoint import LATEST, STAGE_START, Position, RngStates, RunState, SiteState
from .discovery import check_site_data, discover_sites
from .privacy_audit import audit_result, dp_scope
from .records import AuditRecord
from .replay import ReplaySource, build_replay_source
from .replay_config import ReplayConfig
from .results import RunResult
from .run_log import Event, RunLog
from .scenario import Scenario, Stage
from .site_grid import SiteGrid
from .stage_runner import StageRunner, Statistics, Views
from .unlearning import NoUnlearning, UnlearningContext, UnlearningMethod
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
    dp_train_metrics : str or None
        With DP, what training replies carry besides the model (``privacy.train_metrics``),
        for the privacy audit's account of what epsilon covers.
    unlearning : UnlearningMethod
        How a withdrawing site is unlearned (the scenario's withdrawals say who and when).
    replay : ReplayConfig
        Where replay of earlier sites comes from, for strategies that train on it.
    faults : FaultConfig
        Simulated site failures and how often a stage no site could train is retried.
    site_nodes : dict of str to int, optional
        Site id -> the only node id that may play it (``deployment.site_nodes``); ``None``: any.
    evaluate_split : str
        The sites' split the timeline's evaluations are measured on: ``test`` or ``validation``.
    """

    scenario: Scenario
    task: Task
    strategy: Strategy
    seed: int
    run_dir: Path
    round_timeout: float = 3600.0
    dp_delta: float | None = None
    dp_train_metrics: str | None = None
    unlearning: UnlearningMethod = field(default_factory=NoUnlearning)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    site_nodes: dict[str, int] | None = None
    evaluate_split: str = "test"

    @property
    def planned_steps(self) -> dict[str, int]:
        """Site id -> local steps the timeline has it take (0 for held-out sites)."""
        return {site.id: self.scenario.training_rounds(site.id) * self.task.round_steps for site in self.scenario.sites}

    @property
    def planned_dp_steps(self) -> dict[str, int]:
        """Site id -> the DP-SGD steps a target epsilon is planned over: :attr:`planned_steps` plus
        the steps the unlearning method plans at the site for each withdrawal
        (:meth:`~server.unlearning.UnlearningMethod.planned_steps`)."""
        steps = Counter(self.planned_steps)
        for withdrawal in self.scenario.withdrawals:
            steps.update(self.unlearning.planned_steps(withdrawal, self.scenario, self.task))
        return dict(steps)


def initial_arrays(task: Task, seed: int) -> ArrayRecord:
    """The global model before any training, the same for every run with this seed."""
    torch.manual_seed(seeding.stream_seed(seed, seeding.Stream.MODEL_INIT))
    return ArrayRecord(task.build_model().state_dict())


class Timeline:
    """Runs a :class:`RunPlan` on a grid; the outcome lands in :attr:`result`.

    The timeline's :class:`~server.checkpoint.RunState` is saved after every training round,
    phase and stage (``checkpoints/resume.pt``); a run started with ``resume`` continues from one.

    Parameters
    ----------
    plan : RunPlan
        What to run.
    on_round : callable, optional
        Called with ``(stage, round)`` after each training round.
    on_stage : callable, optional
        Called with ``stage`` after each stage's evaluation.
    resume : RunState, optional
        The state of a killed run to continue from (same plan).
    on_event : callable, optional
        Called with each event of ``metrics.jsonl`` as it is written (experiment tracking).
    """

    def __init__(self, plan: RunPlan, on_round: Callable[[int, int], None] | None = None,
                 on_stage: Callable[[int], None] | None = None, resume: RunState | None = None,
                 on_event: Callable[[dict], None] | None = None) -> None:
        self.plan = plan
        self.on_round = on_round
        self.on_stage = on_stage
        self.on_event = on_event
        self.resume = resume
        self.result: RunResult | None = None

    def run(self, grid: Grid) -> RunResult:
        plan, scenario = self.plan, self.plan.scenario
        self._checkpoints = plan.run_dir / "checkpoints"
        self._checkpoints.mkdir(parents=True, exist_ok=True)
        log = self._log = RunLog(plan.run_dir / "metrics.jsonl", on_round=self.on_round,
                                 resume_from=None if self.resume is None else self.resume.log, on_event=self.on_event)
        self._runner = StageRunner(plan.task, plan.round_timeout, plan.evaluate_split, log)
        try:
            site_of_node = discover_sites(grid, scenario.site_ids, listener=log.listener(Event.SITE),
                                          site_nodes=plan.site_nodes)
            check_site_data(grid, site_of_node, scenario.site_ids, log.listener(), plan.round_timeout)
            state = self._state = self.resume or self._fresh_state()
            self._sites = SiteState(state.calls, state.accountants)
            self._sites.attach(site_of_node)
            self._views = Views(grid, site_of_node, log, self._sites)
            if self.resume is not None:
                self._views.resume(scenario.site_ids, plan.round_timeout)  # calls and accountants at the checkpoint
                state.rng.restore()
                log.write(Event.RESUMED, position=asdict(state.position))
            else:
                self._save(Position(1), LATEST, STAGE_START)
            everyone = self._views.exchange(scenario.site_ids, Event.MATRIX)
            for stage in scenario.stages[state.position.stage - 1:]:
                log.stage = stage.index
                state = self._train_until_a_site_trains(stage)
                torch.save(state.arrays.to_torch_state_dict(), self._checkpoints / f"stage_{stage.index}.pt")
                # The stage's sites teach the source while they are present.
                state.source.learn(self._views.exchange(list(stage.sites), Event.REPLAY), plan.round_timeout)
                state.source.save(self._checkpoints / "replay.pt")
                site_metrics = self._evaluate_everyone(everyone, state.arrays, stage.index)
                state.result.add_stage(site_metrics, state.statistics,
                                       plan.task.pool_metrics(site_metrics, state.statistics),
                                       {phase: plan.task.phase_config(phase, totals)
                                        for phase, totals in state.statistics.items()})
                for withdrawal in scenario.withdrawals_after(stage.index):
                    state.arrays, record = self._withdrawal_event(state).run(withdrawal, state.arrays)
                    state.result.withdrawals.append(record)
                state.statistics, state.trained, state.attempt = {}, 0, 0
                self._save(Position(stage.index + 1), LATEST, STAGE_START)  # the next stage starts here
                if self.on_stage is not None:
                    self.on_stage(stage.index)
            result = state.result
            result.failures = state.failures
            if scenario.audit is not None:
                result.audit = self._audit(state.arrays)
            result.replay = state.source.summary()
        finally:
            log.close()
        result.write(plan.run_dir)
        self.result = result
        return result

    def _fresh_state(self) -> RunState:
        plan = self.plan
        initial = initial_arrays(plan.task, plan.seed)
        keep_updates = plan.scenario.withdrawals and plan.unlearning.needs_updates
        return RunState(Position(1), initial, initial, plan.strategy,
                        build_replay_source(plan.replay, plan.task, plan.seed),
                        UpdateStore(plan.run_dir / "updates") if keep_updates else None,
                        RunResult(plan.scenario, plan.task.primary_metric, plan.evaluate_split))

    def _save(self, position: Position, *names: str) -> None:
        state = self._state
        state.position, state.log, state.rng = position, self._log.mark(), RngStates.capture()
        state.calls, state.accountants = dict(self._sites.calls), dict(self._sites.accountants)
        state.save(self._checkpoints, *names)

    def _train_until_a_site_trains(self, stage: Stage) -> RunState:
        """Train the stage; if sites went down or replied invalidly so that none trained, run it
        again from its start (``faults.stage_retries`` times), then stop the run."""
        retries = self.plan.faults.stage_retries
        while True:
            state = self._state
            failed_before = len(state.failures)
            if state.position == Position(stage.index):
                self._hand_replay(state.source, stage)
            state.arrays, state.statistics = self._runner.train(
                state.strategy, self._views.training(list(stage.sites), state), stage, state.arrays,
                start=state.position, statistics=state.statistics, on_progress=self._checkpoint)
            if state.trained > 0 or len(state.failures) == failed_before:
                return state
            if state.attempt >= retries:
                last = state.failures[-1]
                raise MedsitesError(f"stage {stage.index}: no site ({', '.join(stage.sites)}) completed a training "
                                    f"round in {state.attempt + 1} attempts (faults.stage_retries={retries}; last "
                                    f"failure: site {last.site}: {last.reason})")
            self._log.write(Event.RETRY, attempt=state.attempt + 1)
            retry = RunState.load(self._checkpoints, STAGE_START)
            retry.attempt, retry.failures = state.attempt + 1, state.failures
            self._state = retry

    def _hand_replay(self, source: ReplaySource, stage: Stage) -> None:
        """Give a strategy that trains on replay (:class:`~strategies.capabilities.ReplayConsumer`)
        samples of every site that trained before ``stage`` and is not in it."""
        consumer = capable(self._state.strategy, ReplayConsumer)
        if consumer is None:
            return
        earlier = [site for site in self.plan.scenario.seen_by(stage.index - 1) if site not in stage.sites]
        replay = source.replay(earlier)
        consumer.set_replay(pack_domains(replay) if replay else None)

    def _checkpoint(self, position: Position, arrays: ArrayRecord, statistics: Statistics) -> None:
        """Save the state at ``position`` of the current stage (the stage runner's progress hook)."""
        self._state.arrays, self._state.statistics = arrays, statistics
        self._save(position)

    def _audit(self, arrays: ArrayRecord) -> AuditRecord:
        """Membership inference at every site that trained, against the final model."""
        scenario, planned_steps = self.plan.scenario, self.plan.planned_steps
        replies = {}
        for site in scenario.seen_by(len(scenario.stages)):  # one at a time: each trains its own reference models
            view = self._views.exchange([site], Event.AUDIT)
            query = AuditQuery(scenario.audit.reference_models, planned_steps[site], scenario.audit.attack)
            (reply,) = view.send_and_receive(AUDIT.messages(request(query, model=arrays), view.get_node_ids()),
                                             timeout=self.plan.round_timeout)
            replies[site] = AuditReply.from_record(reply.content[RecordName.AUDIT])
        scope = None
        if self.plan.dp_train_metrics is not None:
            scope = dp_scope(self.plan.dp_train_metrics, any(phase.statistics for phase in self.plan.task.phases),
                             bool(scenario.withdrawals))
        return audit_result(replies, self.plan.dp_delta, self._state.result.withdrawals, scope)

    def _withdrawal_event(self, state: RunState) -> WithdrawalEvent:
        plan = self.plan
        context = UnlearningContext(plan.scenario, plan.task, state.strategy, self._runner, self._views,
                                    state.initial, self._checkpoints, state.updates, plan.round_timeout)
        return WithdrawalEvent(plan.unlearning, context, plan.task.primary_metric, plan.dp_delta)

    def _evaluate_everyone(self, everyone: SiteGrid, arrays: ArrayRecord, stage: int) -> dict[str, dict]:
        messages = EVALUATE.messages(request(EvaluateConfig(stage, self.plan.evaluate_split), model=arrays),
                                     everyone.get_node_ids())
        replies = everyone.send_and_receive(messages, timeout=self.plan.round_timeout)
        return {everyone.site_of_node(reply.metadata.src_node_id): dict(reply.content[RecordName.METRICS])
                for reply in replies}


def build_server_app(timeline: Timeline) -> ServerApp:
    """Wrap a timeline in a Flower ServerApp."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        timeline.run(grid)

    return app
