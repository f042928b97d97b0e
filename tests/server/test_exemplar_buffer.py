"""The real-sample replay reference (server/exemplar_buffer.py): what it asks the sites for, what
it keeps and replays, and what the report says of it."""

import torch
from flwr.app import RecordDict
from helpers.fake_grid import CannedGrid
from torch.utils.data import TensorDataset

from server.exemplar_buffer import ExemplarBuffer
from server.replay import build_replay_source
from server.replay_config import ReplayConfig
from server.site_grid import SiteGrid
from sites.protocol import EXEMPLARS, ExemplarsQuery, RecordName
from sites.replay import pack_domains

SITE_OF_NODE = {31: "A", 32: "B", 33: "C"}


def _exemplars(site: str, n: int) -> TensorDataset:
    level = float(list(SITE_OF_NODE.values()).index(site))
    return TensorDataset(torch.full((n, 1, 4, 4), level), torch.full((n,), int(level)))


def _grid() -> CannedGrid:
    def answer(message):
        site, count = SITE_OF_NODE[message.metadata.dst_node_id], EXEMPLARS.config_of(message).count
        return RecordDict({RecordName.EXEMPLARS: pack_domains({site: _exemplars(site, count)})})

    return CannedGrid(SITE_OF_NODE, answer)


def test_the_buffer_keeps_each_sites_exemplars_and_replays_them_unchanged(tmp_path):
    buffer = build_replay_source(ReplayConfig(source="real", per_site=3), task=None, seed=0)
    assert isinstance(buffer, ExemplarBuffer)
    grid = _grid()
    buffer.learn(SiteGrid(grid, SITE_OF_NODE, ["A"]), timeout=5)
    buffer.learn(SiteGrid(grid, SITE_OF_NODE, ["B", "C"]), timeout=5)
    assert [(m.metadata.dst_node_id, EXEMPLARS.config_of(m)) for m in grid.sent] == \
        [(31, ExemplarsQuery(3)), (32, ExemplarsQuery(3)), (33, ExemplarsQuery(3))]
    replay = buffer.replay(["C", "A"])
    assert list(replay) == ["C", "A"]
    for site, data in replay.items():
        for kept, sent in zip(data.tensors, _exemplars(site, 3).tensors):
            assert torch.equal(kept, sent)
    assert buffer.summary().to_dict() == {"source": "real", "private": False, "exemplars": {"A": 3, "B": 3, "C": 3}}
    buffer.save(tmp_path / "replay.pt")
    saved = torch.load(tmp_path / "replay.pt")
    assert list(saved) == ["A", "B", "C"] and torch.equal(saved["B"][0], _exemplars("B", 3).tensors[0])
