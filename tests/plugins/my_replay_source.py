"""A user's own replay source, defined outside the packages, to test the plug-in path."""

from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from server.records import ReplayRecord
from server.replay import ReplaySource
from server.site_grid import SiteGrid
from sites.tasks import ReplayCodec


class NoiseReplay(ReplaySource):
    """Replays, for every earlier site, uniform noise in the task's replay space decoded into its
    training format: a source that learns nothing of the sites but which ones it saw."""

    task_capabilities = (ReplayCodec,)

    def __init__(self, task, config, seed: int) -> None:
        super().__init__(task, config, seed)
        self.learned: list[str] = []

    def learn(self, view: SiteGrid, timeout: float) -> None:
        self.learned += [view.site_of_node(node) for node in view.get_node_ids()]

    def replay(self, sites: list[str]) -> dict[str, TensorDataset]:
        generator = torch.Generator().manual_seed(self.seed)
        n, task = self.config.per_site, self.task
        classes = torch.arange(n) % task.replay_classes if task.replay_classes else None
        return {site: task.decode_replay(torch.rand(n, *task.replay_shape, generator=generator) * 2 - 1, classes)
                for site in sites}

    def summary(self) -> ReplayRecord:
        return ReplayRecord("noise", True, {"learned": self.learned})

    def save(self, path: Path) -> None:
        torch.save(self.learned, path)
