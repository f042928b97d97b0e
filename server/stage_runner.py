"""One stage's training, shared by the timeline and the withdrawal code (retraining, rewinding).

:class:`StageRunner` runs the task's phases of one stage as the strategy's own rounds
(``Strategy.start``) on a view that shows the stage's sites; a phase that needs statistics first
sums the present sites' counts. :class:`Views` makes those views: a training view for the
timeline's own stages (tolerant of sites that go down or reply invalidly, recording updates),
and exchange views for everything else.
"""

from collections.abc import Mapping
from typing import Protocol

from flwr.app import ArrayRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from sites.protocol import RESUME, STATISTICS, TRAIN, EvaluateConfig, RecordName, StatisticsQuery, TrainConfig, request
from sites.tasks import Task

from .checkpoint import Position, RunState, SiteState
from .records import Failure
from .run_log import Event, RunLog
from .scenario import Stage
from .site_grid import SiteGrid
from .statistics import sum_counts

#: Phase -> the site statistics summed for it.
Statistics = dict[str, dict[str, float]]


class ProgressHook(Protocol):
    """Told where a stage's training stands (the timeline saves its checkpoint there)."""

    def __call__(self, position: Position, arrays: ArrayRecord, statistics: Statistics) -> None:
        """``position`` is done; ``arrays`` is the global model there, ``statistics`` those summed so far."""


class Views:
    """Makes the :class:`SiteGrid` views of one run: each counts the seeded calls it sends.

    Parameters
    ----------
    grid : Grid
        The federation's grid.
    site_of_node : mapping of int to str
        Node id to site id.
    log : RunLog
        Where replies and failures are logged.
    sites : SiteState
        Counts the seeded calls sent and keeps the DP accountants replied.
    """

    def __init__(self, grid: Grid, site_of_node: Mapping[int, str], log: RunLog, sites: SiteState) -> None:
        self.grid, self.site_of_node, self.log, self.sites = grid, dict(site_of_node), log, sites

    def exchange(self, sites: list[str], event: Event) -> SiteGrid:
        """A view showing ``sites``, logging their replies as ``event`` and keeping the DP
        accountants they reply (a withdrawal's retraining and unlearning charge them)."""
        log_replies = self.log.listener(event)

        def listener(message_type: str, replies: list) -> None:
            log_replies(message_type, replies)
            self.sites.listen(message_type, replies)

        return SiteGrid(self.grid, self.site_of_node, sites, listener, on_send=self.sites.count)

    def resume(self, sites: list[str], timeout: float) -> None:
        """Set ``sites`` back to the state :attr:`sites` keeps of them (``query.resume``): their
        seeded-call counts and DP accountants."""
        view = self.exchange(sites, Event.RESUME)
        messages = [RESUME.message(request(self.sites.of(view.site_of_node(node))), node)
                    for node in view.get_node_ids()]
        view.send_and_receive(messages, timeout=timeout)

    def set_accountants(self, histories: Mapping[str, str], timeout: float) -> None:
        """Set the DP accountants back to ``histories`` (site id -> history; a site left out had
        none), at the server and at every site whose accountant differs."""
        changed = [site for site in dict.fromkeys(self.site_of_node.values())
                   if self.sites.accountants.get(site) != histories.get(site)]
        self.sites.accountants = dict(histories)
        self.resume(changed, timeout)

    def training(self, sites: list[str], state: RunState) -> SiteGrid:
        """A view of the timeline's own training: it logs replies as rounds, keeps the sites'
        state, counts training replies into ``state.trained``, records updates into
        ``state.updates`` (if the run keeps them) and tolerates sites that go down or reply
        invalidly (logged and added to ``state.failures``)."""
        log_replies = self.log.listener()

        def listener(message_type: str, replies: list) -> None:
            log_replies(message_type, replies)
            self.sites.listen(message_type, replies)
            if message_type == TRAIN.type:
                state.trained += len(replies)

        def on_failure(message_type: str, failures: list[tuple[str, str]]) -> None:
            for site, reason in failures:
                failure = Failure(self.log.stage, self.log.round + 1, site, message_type, reason)
                self.log.write(Event.FAILURE, **failure.to_dict())
                state.failures.append(failure)

        return SiteGrid(self.grid, self.site_of_node, sites, listener,
                        recorder=None if state.updates is None else state.updates.record,
                        on_send=self.sites.count, on_failure=on_failure)


class StageRunner:
    """Runs the task's phases of a stage as the strategy's rounds.

    Parameters
    ----------
    task : Task
        Gives the phases and each phase's config from its statistics.
    timeout : float
        Seconds to wait for each exchange.
    evaluate_split : str
        The sites' split of the strategy's evaluation rounds (``test`` or ``validation``).
    log : RunLog, optional
        Where each round's aggregated training metrics are written (``aggregate`` events): the
        strategy's own, such as PGA's server step, besides the averages of the sites'.
    """

    def __init__(self, task: Task, timeout: float, evaluate_split: str = "test", log: RunLog | None = None) -> None:
        self.task, self.timeout, self.evaluate_split, self.log = task, timeout, evaluate_split, log

    def train(self, strategy: Strategy, view: SiteGrid, stage: Stage, arrays: ArrayRecord, *,
              start: Position | None = None, statistics: Statistics | None = None,
              on_progress: ProgressHook | None = None) -> tuple[ArrayRecord, Statistics]:
        """Run every phase of the task from ``start`` on; return the new global arrays and, per
        phase that needed them, the summed site statistics.

        Parameters
        ----------
        strategy : Strategy
            Runs the rounds; its state carries over from stage to stage.
        view : SiteGrid
            Shows the stage's sites.
        stage : Stage
            The stage (its index and rounds).
        arrays : ArrayRecord
            The global model at ``start``.
        start : Position, optional
            Where in the stage to start (a resumed run); default its beginning.
        statistics : dict, optional
            Statistics already summed in this stage before ``start``.
        on_progress : ProgressHook, optional
            Called after every round but a phase's last, and after every phase.
        """
        start = start or Position(stage.index)
        statistics = dict(statistics or {})
        for index, phase in enumerate(self.task.phases[start.phase:], start=start.phase):
            entries = {}
            if phase.statistics:
                if phase.name not in statistics:
                    statistics[phase.name] = self.sum_statistics(view, arrays, StatisticsQuery(stage.index, phase.name))
                entries = self.task.phase_config(phase.name, statistics[phase.name])
            done = start.rounds if index == start.phase else 0

            def round_done(server_round: int, current: ArrayRecord, index=index, done=done) -> None:
                # The phase's last round is reported with the phase, after whatever the strategy
                # does once its rounds are over (EWC's Fisher).
                if 0 < server_round < stage.rounds - done:
                    on_progress(Position(stage.index, index, done + server_round), current, statistics)

            first_round = None if self.log is None else self.log.round
            outcome = strategy.start(
                grid=view,
                initial_arrays=arrays,
                num_rounds=stage.rounds - done,
                timeout=self.timeout,
                train_config=TrainConfig(stage.index, phase.name, entries=entries).to_record(),
                evaluate_config=EvaluateConfig(stage.index, self.evaluate_split).to_record(),
                evaluate_fn=None if on_progress is None else round_done,
            )
            if len(outcome.arrays) > 0:
                arrays = outcome.arrays
            if first_round is not None:
                for server_round, metrics in sorted(outcome.train_metrics_clientapp.items()):
                    self.log.write(Event.AGGREGATE, round=first_round + server_round, phase=phase.name,
                                   metrics=dict(metrics))
            if on_progress is not None:
                on_progress(Position(stage.index, index + 1), arrays, statistics)
        return arrays, statistics

    def sum_statistics(self, view: SiteGrid, arrays: ArrayRecord, query: StatisticsQuery) -> dict[str, float]:
        """Ask the present sites for their counts and add them up: counts cross the wire, samples never."""
        replies = view.send_and_receive(STATISTICS.messages(request(query, model=arrays), view.get_node_ids()),
                                        timeout=self.timeout)
        return sum_counts([reply.content[RecordName.STATISTICS] for reply in replies])
