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

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from torch.utils.data import TensorDataset

from sites.errors import ConfigError, refuse_unknown_keys
from sites.tasks import Task

from .exemplar_buffer import ExemplarBuffer
from .site_grid import SiteGrid

SOURCES = ("none", "smd", "real")

#: The generator's settings (``replay.generator``) and their defaults.
GENERATOR_DEFAULTS = {
    "channels": [16, 32, 64],  # UNet widths per level; cross-attention at the lowest level
    "embed_dim": 64,           # width of the prompt and class tokens
    "heads": 8,                # attention heads
    "prompt_tokens": 4,        # learnable tokens per site
    "steps": 200,              # generator training steps per site and stage
    "batch_size": 8,
    "lr": 1.0e-3,
    "sampling_steps": 25,      # DDIM steps per sample
}


@dataclass(frozen=True)
class ReplayConfig:
    """The ``replay`` config group.

    Parameters
    ----------
    source : str
        One of :data:`SOURCES`.
    per_site : int
        Replay samples of each earlier site sent with every stage.
    generator : dict
        ``smd``: the generator's settings (:data:`GENERATOR_DEFAULTS`).
    """

    source: str = "none"
    per_site: int = 32
    generator: dict = field(default_factory=lambda: dict(GENERATOR_DEFAULTS))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ReplayConfig":
        refuse_unknown_keys("replay", config, (f.name for f in fields(cls)))
        generator = dict(config.get("generator") or {})
        refuse_unknown_keys("replay.generator", generator, GENERATOR_DEFAULTS)
        replay = cls(source=config.get("source", "none"), per_site=config.get("per_site", cls.per_site),
                     generator={**GENERATOR_DEFAULTS, **generator})
        if replay.source not in SOURCES:
            raise ConfigError("replay.source", f"must be one of {list(SOURCES)} (got {replay.source!r})")
        _check_count("replay.per_site", replay.per_site)
        for key in ("embed_dim", "heads", "prompt_tokens", "steps", "batch_size", "sampling_steps"):
            _check_count(f"replay.generator.{key}", replay.generator[key])
        channels = replay.generator["channels"]
        if not isinstance(channels, list) or len(channels) < 2:
            raise ConfigError("replay.generator.channels", f"must list at least two widths (got {channels!r})")
        for width in channels:
            _check_count("replay.generator.channels", width)
        lr = replay.generator["lr"]
        if not isinstance(lr, int | float) or isinstance(lr, bool) or not lr > 0:
            raise ConfigError("replay.generator.lr", f"must be a number > 0 (got {lr!r})")
        return replay


def _check_count(key: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(key, f"must be an integer >= 1 (got {value!r})")


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
