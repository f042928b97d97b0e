"""Tasks: what a site learns (model, data, loss, local training, metrics).

A task is chosen in config by ``_target_`` (see ``configs/task/``) and built with
:func:`build_task`, so a user's own task class plugs in the same way as ours. What a feature
needs beyond the :class:`Task` contract is a protocol of :mod:`~sites.tasks.capabilities`.
"""

from .base import Objective, Phase, SiteData, Task, build_task
from .capabilities import ClassLogits, LabelCorruption, PhaseStatistics, ReferenceData, ReplayCodec

__all__ = ["ClassLogits", "LabelCorruption", "Objective", "Phase", "PhaseStatistics", "ReferenceData",
           "ReplayCodec", "SiteData", "Task", "build_task"]
