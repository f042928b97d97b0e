"""What a run needs to continue after it was killed: the state at its last complete round.

The timeline keeps its :class:`RunState` up to date and saves it after every training round
(and every phase and stage) as ``checkpoints/resume.pt``; ``python -m simulations.run resume=<run dir>`` loads it and
continues from there. Everything that shapes the rest of the run is in it: the global model,
the strategy object itself (so any strategy's state comes along, Flower's built-in ones
included), the replay source, the results so far, where ``metrics.jsonl`` stood, the sites'
state (their training-call counts, which seed local training, and their DP accountants) and
the server's random generators.
"""

import copyreg
import io
import os
import pickle
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, Message
from flwr.serverapp.strategy import Strategy

from sites.errors import MedsitesError
from sites.protocol import SEEDED_TYPES, AccountantHistory, NodeState, RecordName

from .records import Failure
from .replay import ReplaySource
from .results import RunResult
from .update_store import UpdateStore


class _Pickler(pickle.Pickler):
    """Arrays that came over the network hold memoryviews of the received buffers, which pickle
    cannot store: copy them out."""

    dispatch_table = {**copyreg.dispatch_table, memoryview: lambda view: (memoryview, (view.tobytes(),))}


#: The latest state; and the state at the start of the current stage (a stage that no site
#: could train is run again from there).
LATEST = "resume.pt"
STAGE_START = "stage_start.pt"


@dataclass(frozen=True)
class Position:
    """Where the timeline stands: in stage ``stage`` (1-based), phase ``phase`` (0-based index
    into the task's phases), ``rounds`` of that phase done. ``phase == len(phases)``: the stage's
    training is done and its evaluation (and what follows it) is next."""

    stage: int
    phase: int = 0
    rounds: int = 0


class SiteState:
    """The sites' state as the server can rebuild it: how many seeded calls (training, generator,
    Fisher, unlearning) each was sent, and each DP site's accountant history from its last reply.

    Feed it every message sent (:meth:`count`, a :class:`~server.site_grid.SiteGrid` ``on_send``
    hook) and every reply (:meth:`listen`, a reply listener).
    """

    def __init__(self, calls: dict[str, int] | None = None, accountants: dict[str, str] | None = None) -> None:
        self.calls = Counter(calls or {})
        self.accountants = dict(accountants or {})
        self._site_of_node: dict[int, str] = {}

    def attach(self, site_of_node: dict[int, str]) -> None:
        self._site_of_node = dict(site_of_node)

    def count(self, messages: Iterable[Message]) -> None:
        for message in messages:
            if message.metadata.message_type in SEEDED_TYPES:
                self.calls[self._site_of_node[message.metadata.dst_node_id]] += 1

    def listen(self, message_type: str, replies: list[tuple[str, Message]]) -> None:
        for site, reply in replies:
            if RecordName.ACCOUNTANT in reply.content.config_records:
                self.accountants[site] = AccountantHistory.from_record(reply.content[RecordName.ACCOUNTANT]).dp_history

    def of(self, site: str) -> NodeState:
        """The ``query.resume`` config that sets ``site`` back to this state."""
        return NodeState(self.calls[site], self.accountants.get(site))


@dataclass(frozen=True)
class RngStates:
    """The states of the server process's global generators (Flower samples nodes with ``random``)."""

    random: tuple
    numpy: tuple
    torch: torch.Tensor

    @classmethod
    def capture(cls) -> "RngStates":
        """The generators' states now."""
        return cls(random.getstate(), np.random.get_state(), torch.get_rng_state())

    def restore(self) -> None:
        """Set the generators back to these states."""
        random.setstate(self.random)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch)


@dataclass
class RunState:
    """Everything the timeline needs to continue from :attr:`position`.

    Attributes
    ----------
    position : Position
        What is done.
    arrays : ArrayRecord
        The global model there.
    initial : ArrayRecord
        The model before any training (withdrawals rewind to it).
    strategy : Strategy
        The strategy object, with whatever state it keeps.
    source : ReplaySource
        The replay source (generator, prompts, buffer, or :class:`~server.replay.NoReplay`).
    updates : UpdateStore or None
        Every training update, if the unlearning method needs them.
    result : RunResult
        The stages finished so far.
    statistics : dict
        Phase -> site statistics summed so far in the current stage.
    trained : int
        Training replies received in the current stage (0 after a stage means no site trained).
    attempt : int
        How many times the current stage was started again because no site trained.
    failures : list of Failure
        Every simulated site failure so far (stage, round, site, reason).
    log : dict
        ``metrics.jsonl``'s :meth:`~server.run_log.RunLog.mark`.
    calls, accountants : dict
        :class:`SiteState`'s counts and DP histories.
    rng : RngStates
        The server's generators.
    """

    position: Position
    arrays: ArrayRecord
    initial: ArrayRecord
    strategy: Strategy
    source: ReplaySource
    updates: UpdateStore | None
    result: RunResult
    statistics: dict[str, dict[str, float]] = field(default_factory=dict)
    trained: int = 0
    attempt: int = 0
    failures: list[Failure] = field(default_factory=list)
    log: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    accountants: dict[str, str] = field(default_factory=dict)
    rng: RngStates = field(default_factory=RngStates.capture)

    def save(self, directory: Path, *names: str) -> None:
        """Write ``<directory>/<name>`` for each of ``names`` (default: the latest) atomically:
        a kill mid-write leaves the previous one. The state is pickled once."""
        buffer = io.BytesIO()
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(self)
        for name in names or (LATEST,):
            partial = directory / (name + ".partial")
            partial.write_bytes(buffer.getbuffer())
            os.replace(partial, directory / name)

    @staticmethod
    def load(directory: Path, name: str = LATEST) -> "RunState":
        path = directory / name
        if not path.exists():
            raise MedsitesError(f"{path} does not exist: the run stopped before its first checkpoint "
                                "(nothing to resume; start it again)")
        # The state holds the strategy and source objects: only resume runs you made.
        with path.open("rb") as file:
            return pickle.load(file)
