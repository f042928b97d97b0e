"""Tasks: what a site learns (model, data, loss, local training, metrics).

A task is chosen in config by ``_target_`` (see ``configs/task/``) and built with
:func:`build_task`, so a user's own task class plugs in the same way as ours.
"""

from .base import Objective, Phase, SiteData, Task, build_task

__all__ = ["Objective", "Phase", "SiteData", "Task", "build_task"]
