"""The site's local objective, composed layer by layer from what a training message carries."""

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict

from sites import protocol
from sites.client.app import HANDLERS
from sites.client.objectives import TrainingCall, local_objective, with_replay
from sites.ewc import ewc_penalty
from sites.protocol import RecordName, ReplayOptions, TrainConfig
from sites.replay import pack_domains
from sites.spec import SiteSpec


@pytest.fixture
def site_data(small_task):
    return small_task.site_data(SiteSpec(id="A", name="a", index=0), seed=0)


def _call(task, data, arrays: dict[str, ArrayRecord], config: TrainConfig) -> TrainingCall:
    torch.manual_seed(0)
    model = task.build_model()
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "config": ConfigRecord(config._entries()),
                          **arrays})
    return TrainingCall(task, model, data.train, Message(content, dst_node_id=1, message_type="train"), config, seed=3)


def _ewc_arrays(model: torch.nn.Module) -> dict[str, ArrayRecord]:
    fisher = {name: torch.full_like(p, 2.0) for name, p in model.named_parameters()}
    anchor = {name: p.detach() + 0.1 for name, p in model.named_parameters()}
    return {RecordName.EWC_FISHER: ArrayRecord(fisher), RecordName.EWC_ANCHOR: ArrayRecord(anchor)}


def _batch(data, size: int = 4) -> list[torch.Tensor]:
    return [tensor[:size] for tensor in data.train.tensors]


def test_a_message_without_strategy_arrays_trains_on_the_task_loss(small_task, site_data):
    assert local_objective(_call(small_task, site_data, {}, TrainConfig())) is None


def test_ewc_adds_its_weighted_penalty_to_the_task_loss(small_task, site_data):
    torch.manual_seed(0)
    arrays = _ewc_arrays(small_task.build_model())
    call = _call(small_task, site_data, arrays, TrainConfig(ewc_weight=5.0))
    batch = _batch(site_data)
    fisher, anchor = (arrays[name].to_torch_state_dict() for name in (RecordName.EWC_FISHER, RecordName.EWC_ANCHOR))
    expected = small_task.batch_loss(call.model, batch, call.config) + 5.0 * ewc_penalty(call.model, fisher, anchor)
    assert ewc_penalty(call.model, fisher, anchor).item() > 0
    assert local_objective(call)(call.model, batch).item() == pytest.approx(expected.item(), rel=1e-6)


def test_replay_wraps_the_objective_it_is_given(small_task, site_data):
    replay = {RecordName.REPLAY: pack_domains({"B": site_data.test})}
    call = _call(small_task, site_data, replay, TrainConfig(replay=ReplayOptions(objective="mix")))
    seen = []

    def spy(model, batch):
        seen.append(len(batch[0]))
        return small_task.batch_loss(model, batch, call.config)

    with_replay(call, spy)(call.model, _batch(site_data, 4))
    assert seen == [8]  # the current batch of 4 and as many replayed samples, through the given loss


def test_the_penalty_wraps_the_replay_objective(small_task, site_data):
    torch.manual_seed(0)
    arrays = {**_ewc_arrays(small_task.build_model()), RecordName.REPLAY: pack_domains({"B": site_data.test})}
    config = TrainConfig(ewc_weight=5.0, replay=ReplayOptions(objective="mix"))
    both, replay_only = (_call(small_task, site_data, chosen, config)
                         for chosen in (arrays, {RecordName.REPLAY: arrays[RecordName.REPLAY]}))
    fisher, anchor = (arrays[name].to_torch_state_dict() for name in (RecordName.EWC_FISHER, RecordName.EWC_ANCHOR))
    batch = _batch(site_data)
    # The same seed draws the same replay batch in both objectives.
    difference = local_objective(both)(both.model, batch) - local_objective(replay_only)(replay_only.model, batch)
    assert difference.item() == pytest.approx(5.0 * ewc_penalty(both.model, fisher, anchor).item(), rel=1e-5)


def test_every_message_kind_has_a_handler():
    assert set(HANDLERS) == set(protocol.KINDS)
