"""Where replay of earlier sites comes from (the ``replay`` config group, DESIGN.md §1.1).

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
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field, PositiveFloat, PositiveInt
from torch.utils.data import TensorDataset

from sites.config import ConfigModel
from sites.tasks import Task

from .exemplar_buffer import ExemplarBuffer
from .site_grid import SiteGrid


class GeneratorSettings(ConfigModel):
    """``replay.generator``: the replay generator of ``source: smd``.

    Parameters
    ----------
    channels : list of int
        UNet widths per level (at least two); cross-attention at the lowest level.
    embed_dim : int
        Width of the prompt and class tokens.
    heads : int
        Attention heads.
    prompt_tokens : int
        Learnable tokens per site.
    steps : int
        Generator training steps per site and stage.
    batch_size : int
        Generator training batch size.
    lr : float
        Generator learning rate.
    sampling_steps : int
        DDIM steps per sample.
    """

    channels: Annotated[list[PositiveInt], Field(min_length=2)] = [16, 32, 64]
    embed_dim: PositiveInt = 64
    heads: PositiveInt = 8
    prompt_tokens: PositiveInt = 4
    steps: PositiveInt = 200
    batch_size: PositiveInt = 8
    lr: PositiveFloat = 1.0e-3
    sampling_steps: PositiveInt = 25


class ReplayConfig(ConfigModel):
    """The ``replay`` config group.

    Parameters
    ----------
    source : str
        ``none``, ``smd`` or ``real`` (see above).
    per_site : int
        Replay samples of each earlier site sent with every stage.
    generator : GeneratorSettings
        ``smd``: the generator's settings.
    """

    source: Literal["none", "smd", "real"] = "none"
    per_site: PositiveInt = 32
    generator: GeneratorSettings = GeneratorSettings()


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
