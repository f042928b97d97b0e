"""Replay from a buffer of real training samples: the reference that breaks the privacy rule.

Each site of a stage hands over ``per_site`` of its training samples (the ``query.exemplars``
handler) once its stage has trained; the server keeps them and replays them unchanged. Data
leaving the site is what the platform otherwise forbids, so runs with this source are labelled
in their reports as not private, and compared against only.
"""

from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from sites.protocol import EXEMPLARS, ExemplarsQuery, RecordName, request
from sites.replay import unpack_domains
from sites.tasks import ReplayCodec, Task

from .records import ReplayRecord
from .replay import ReplaySource
from .replay_config import ReplayConfig
from .site_grid import SiteGrid


class ExemplarBuffer(ReplaySource):
    """``real``: real exemplars of every site learned so far (``per_site`` of each)."""

    # The same replay space as generated replay's, so that a task runs with both sources or neither.
    task_capabilities = (ReplayCodec,)

    def __init__(self, task: Task, config: ReplayConfig, seed: int) -> None:
        super().__init__(task, config, seed)
        self.per_site = config.per_site
        self.exemplars: dict[str, TensorDataset] = {}

    def learn(self, view: SiteGrid, timeout: float) -> None:
        messages = EXEMPLARS.messages(request(ExemplarsQuery(self.per_site)), view.get_node_ids())
        for reply in view.send_and_receive(messages, timeout=timeout):
            self.exemplars.update(unpack_domains(reply.content[RecordName.EXEMPLARS]))

    def replay(self, sites: list[str]) -> dict[str, TensorDataset]:
        return {site: self.exemplars[site] for site in sites}

    def save(self, path: Path) -> None:
        torch.save({site: data.tensors for site, data in self.exemplars.items()}, path)

    def summary(self) -> ReplayRecord:
        return ReplayRecord("real", False, {"exemplars": {site: len(data) for site, data in self.exemplars.items()}})
