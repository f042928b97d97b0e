"""Where replay of earlier sites comes from (the ``replay`` config group, docs/design.md#smd).

- ``none``: no replay;
- ``smd``: Site-Modulated Diffusion (:mod:`server.smd`): a generator trained at each site
  while it is present; the server samples labelled replay for any earlier site;
- ``real``: a buffer of real training samples that each site hands over
  (:mod:`server.exemplar_buffer`). It breaks the privacy rule (data leaves the site) and is a
  reference only; reports label it so.

A source learns the sites of a stage after the stage's training (:meth:`learn`) and hands the
strategy samples of the earlier sites before the next stage (:meth:`replay`).
"""

from pathlib import Path
from typing import Any, Protocol

from torch.utils.data import TensorDataset

from sites.tasks import Task

from .exemplar_buffer import ExemplarBuffer
from .replay_config import ReplayConfig
from .site_grid import SiteGrid


class ReplaySource(Protocol):
    """What the timeline asks of a replay source."""

    def learn(self, view: SiteGrid, timeout: float) -> None:
        """Learn the sites the view shows (called after their stage's training)."""

    def replay(self, sites: list[str]) -> dict[str, TensorDataset]:
        """Samples of each of ``sites`` (all learned before) in the task's training format."""

    def summary(self) -> dict[str, Any]:
        """What the run report says about the source: its kind, whether it kept the privacy
        rule, and its costs."""

    def save(self, path: Path) -> None:
        """Keep what the source holds (a generator and its prompts, or the buffer)."""


def build_replay_source(config: ReplayConfig, task: Task, seed: int) -> ReplaySource | None:
    """The source ``config`` names, or ``None`` for ``source: none``."""
    if config.source == "smd":
        # diffusers takes seconds to import: only runs with a generator pay for it.
        from .smd import SiteModulatedDiffusion

        return SiteModulatedDiffusion(task, config, seed)
    if config.source == "real":
        return ExemplarBuffer(config.per_site)
    return None
