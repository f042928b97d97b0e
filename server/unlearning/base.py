"""What an unlearning method is (:class:`UnlearningMethod`) and what it may use
(:class:`UnlearningContext`): the stage runner, views of the sites, the checkpoints, the initial
model, the scenario and the stored updates."""

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from flwr.app import ArrayRecord
from flwr.serverapp.strategy import Strategy

from sites.config import NoArguments
from sites.protocol import MessageKind, Payload, request
from sites.tasks import Task

from ..run_log import Event
from ..scenario import Scenario, Stage, Withdrawal
from ..site_grid import SiteGrid
from ..stage_runner import StageRunner, Views
from ..update_store import UpdateStore, reply_update

StateDict = dict[str, torch.Tensor]


@dataclass
class UnlearningContext:
    """What a method may use to unlearn a withdrawal.

    Attributes
    ----------
    scenario : Scenario
        The timeline (stages, arrivals, which sites have withdrawn).
    task : Task
        The task (its phases and their local steps).
    strategy : Strategy
        The run's strategy, which trains retrained stages as it trains the timeline's.
    runner : StageRunner
        Trains a stage.
    views : Views
        Makes views of the sites.
    initial : ArrayRecord
        The run's initial global model.
    checkpoints : Path
        Holds ``stage_<t>.pt``, the global model after stage t.
    updates : UpdateStore or None
        Every stored training update, if the method asked for them (:attr:`UnlearningMethod.needs_updates`).
    timeout : float
        Seconds to wait for each exchange.
    """

    scenario: Scenario
    task: Task
    strategy: Strategy
    runner: StageRunner
    views: Views
    initial: ArrayRecord
    checkpoints: Path
    updates: UpdateStore | None
    timeout: float

    def view(self, sites: list[str]) -> SiteGrid:
        """A view showing ``sites``, their replies logged as ``withdrawal`` events."""
        return self.views.exchange(sites, Event.WITHDRAWAL)

    def first_stage(self, withdrawal: Withdrawal) -> int:
        """The stage rewinding methods start from (:meth:`~server.scenario.Scenario.first_arrival`)."""
        return self.scenario.first_arrival(withdrawal)

    def checkpoint_before(self, stage: int) -> ArrayRecord:
        """The global model before ``stage`` (the initial model before stage 1)."""
        if stage == 1:
            return self.initial
        return ArrayRecord(torch.load(self.checkpoints / f"stage_{stage - 1}.pt"))

    def train_stage(self, stage: Stage, arrays: ArrayRecord) -> ArrayRecord:
        """Train ``stage`` (as the scenario replays it: without the sites gone) from ``arrays``."""
        arrays, _ = self.runner.train(self.strategy, self.view(list(stage.sites)), stage, arrays)
        return arrays

    def retrain(self, withdrawal: Withdrawal, first_stage: int = 1) -> ArrayRecord:
        """Every stage from ``first_stage`` up to the withdrawal again, from the model before
        ``first_stage``, without the sites gone at ``withdrawal`` (from stage 1: the oracle)."""
        arrays = self.checkpoint_before(first_stage)
        for stage in self.scenario.replay_stages(withdrawal, first_stage):
            arrays = self.train_stage(stage, arrays)
        return arrays

    def updates_of(self, sites: list[str], arrays: ArrayRecord, kind: MessageKind, config: Payload,
                   extra: Mapping[str, ArrayRecord] | None = None) -> list[tuple[StateDict, int]]:
        """Send ``arrays`` (and the ``extra`` array records) to each of ``sites`` as a ``kind``
        message; return each reply's update against ``arrays`` and its example count, in site order."""
        view = self.view(sites)
        replies = view.send_and_receive(kind.messages(request(config, model=arrays, arrays=extra), view.get_node_ids()),
                                        timeout=self.timeout)
        start = arrays.to_torch_state_dict()
        return [reply_update(reply, start) for reply in replies]


def moved(arrays: ArrayRecord, *updates: StateDict) -> ArrayRecord:
    """``arrays`` plus every update (integer buffers, which updates leave out, unchanged)."""
    return ArrayRecord({key: value + sum(update[key] for update in updates) if key in updates[0] else value
                        for key, value in arrays.to_torch_state_dict().items()})


class UnlearningMethod(ABC):
    """How the federation unlearns a withdrawing site: chosen in config by ``_target_`` (the
    ``unlearning`` group), built with the other keys as arguments.

    A subclass implements :meth:`unlearn`; it may set :attr:`needs_updates` (the run then stores
    every training update for it) and :attr:`is_oracle`, name itself (:attr:`name`) and say
    how many local steps it takes at each site (:meth:`planned_steps`, for DP's planning). A
    method with arguments declares them as its own ``arguments`` model
    (:mod:`sites.config`); the base takes none.
    """

    arguments = NoArguments

    #: The run stores every site's update of every training round (``context.updates``).
    needs_updates: bool = False
    #: The method's result is the oracle itself: the withdrawal reuses the oracle it retrains
    #: anyway instead of calling :meth:`unlearn`.
    is_oracle: bool = False

    @property
    def name(self) -> str:
        """How reports name the method (``withdrawal.json``'s ``method``); default the class name."""
        return type(self).__name__

    def planned_steps(self, withdrawal: Withdrawal, scenario: Scenario, task: Task) -> Counter[str]:
        """Site id -> the local steps (training or unlearning) :meth:`unlearn` takes at each site
        for ``withdrawal``. With ``privacy.target_epsilon`` the sites plan their noise over these
        too, so that the target holds at the end of the run; a method that trains and leaves
        this empty (the default) makes its sites overshoot the target."""
        return Counter()

    @abstractmethod
    def unlearn(self, withdrawal: Withdrawal, arrays: ArrayRecord, context: UnlearningContext) -> ArrayRecord:
        """The global model ``arrays`` (after ``withdrawal.stage``) without the sites gone at
        ``withdrawal`` (``scenario.gone_at(withdrawal)``: this site and those withdrawn before)."""
