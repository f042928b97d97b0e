"""The server's record of the sites' state, and the checkpoint file itself."""

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from server.checkpoint import LATEST, Position, RunState, SiteState
from server.results import RunResult
from sites.errors import MedsitesError


def _sent(kind: str, node: int) -> Message:
    return Message(RecordDict(), dst_node_id=node, message_type=kind)


def test_site_state_counts_the_seeded_calls_it_sent_and_keeps_the_latest_accountant():
    state = SiteState({"A": 2})
    state.attach({11: "A", 12: "B"})
    state.count([_sent("train", 11), _sent("train", 12), _sent("evaluate", 11), _sent("query.fisher", 12),
                 _sent("train.generator", 11), _sent("query.statistics", 12)])
    reply = Message(RecordDict({"metrics": MetricRecord({"num-examples": 1}),
                                "accountant": ConfigRecord({"dp-history": "[[1.1, 0.5, 3]]"})}),
                    dst_node_id=0, message_type="train")
    state.listen("train", [("B", reply)])
    # what query.resume sends each site
    assert dict(state.of("A").to_record()) == {"train-calls": 4}
    assert dict(state.of("B").to_record()) == {"train-calls": 2, "dp-history": "[[1.1, 0.5, 3]]"}
    assert dict(state.of("C").to_record()) == {"train-calls": 0}


def test_a_saved_state_loads_back_and_a_missing_one_is_a_clear_error(tmp_path, scenario):
    arrays = ArrayRecord({"w": torch.ones(3)})
    arrays["w"].data = memoryview(arrays["w"].data)  # as arrays received over the network hold them
    state = RunState(Position(2, 1, 3), arrays, arrays, FedAvg(fraction_evaluate=0.5), None, None,
                     RunResult(scenario, "dice"), calls={"A": 5})
    state.save(tmp_path)
    loaded = RunState.load(tmp_path)
    assert loaded.position == Position(2, 1, 3) and loaded.calls == {"A": 5}
    assert loaded.strategy.fraction_evaluate == 0.5
    assert torch.equal(loaded.arrays.to_torch_state_dict()["w"], torch.ones(3))
    assert not (tmp_path / (LATEST + ".partial")).exists()
    with pytest.raises(MedsitesError, match="stopped before its first checkpoint"):
        RunState.load(tmp_path / "elsewhere")
