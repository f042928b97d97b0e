"""Where replay of earlier sites comes from (the ``replay`` config group, docs/design.md#smd).

- ``none`` (:class:`NoReplay`): no replay;
- ``smd``: Site-Modulated Diffusion (:mod:`server.smd`): a generator trained at each site
  while it is present; the server samples labelled replay for any earlier site;
- ``real``: a buffer of real training samples that each site hands over
  (:mod:`server.exemplar_buffer`). It breaks the privacy rule (data leaves the site) and is a
  reference only; reports label it so.

A source learns the sites of a stage after the stage's training (:meth:`learn`) and hands the
strategy samples of the earlier sites before the next stage (:meth:`replay`). Each source is a
:class:`ReplaySource` in :data:`REPLAY_SOURCES`, which a user's source joins.
"""

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from torch.utils.data import TensorDataset

from sites.registry import Registry
from sites.tasks import Task

from .records import ReplayRecord
from .replay_config import ReplayConfig
from .site_grid import SiteGrid


class ReplaySource(ABC):
    """What the timeline asks of a replay source; a user's source subclasses it and joins
    :data:`REPLAY_SOURCES` (``replay.source``).

    Parameters
    ----------
    task : Task
        The run's task.
    config : ReplayConfig
        The ``replay`` config group.
    seed : int
        The run's seed.
    """

    #: The task capabilities (:mod:`sites.tasks.capabilities`) the source needs.
    task_capabilities: ClassVar[tuple[type, ...]] = ()

    def __init__(self, task: Task, config: ReplayConfig, seed: int) -> None:
        self.task, self.config, self.seed = task, config, seed

    @abstractmethod
    def learn(self, view: SiteGrid, timeout: float) -> None:
        """Learn the sites the view shows (called after their stage's training)."""

    @abstractmethod
    def replay(self, sites: list[str]) -> dict[str, TensorDataset]:
        """Samples of each of ``sites`` (all learned before) in the task's training format."""

    @abstractmethod
    def summary(self) -> ReplayRecord | None:
        """What the run report says about the source (``replay.json``): its kind, whether it kept
        the privacy rule, and its costs; ``None``: nothing to report."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Keep what the source holds (a generator and its prompts, or the buffer)."""


class NoReplay(ReplaySource):
    """``none``: nothing to replay, nothing to learn or keep."""

    def learn(self, view: SiteGrid, timeout: float) -> None:
        pass

    def replay(self, sites: list[str]) -> dict[str, TensorDataset]:
        return {}

    def summary(self) -> None:
        return None

    def save(self, path: Path) -> None:
        pass


#: The replay sources by name (``replay.source``). Each is named by its import path so that
#: only runs that use a source import its module (diffusers takes seconds to import).
REPLAY_SOURCES: Registry[type[ReplaySource]] = Registry("replay source", ReplaySource)
REPLAY_SOURCES.register("none", NoReplay)
REPLAY_SOURCES.register("smd", "server.smd.SiteModulatedDiffusion")
REPLAY_SOURCES.register("real", "server.exemplar_buffer.ExemplarBuffer")


def build_replay_source(config: ReplayConfig, task: Task, seed: int) -> ReplaySource:
    """The source ``config.source`` names."""
    return REPLAY_SOURCES.get(config.source, "replay.source")(task, config, seed)
