"""The protocol (sites/protocol.py): message kinds, and the configs' records on the wire."""

from dataclasses import replace

import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from sites import protocol
from sites.protocol import (
    EvaluateConfig,
    FisherQuery,
    GeneratorConfig,
    NodeState,
    ReplayOptions,
    TrainConfig,
    UnlearnConfig,
)


def test_each_kind_registers_the_handler_of_the_type_it_sends():
    app = ClientApp()
    for kind in protocol.KINDS:
        kind.register(app)(lambda message, context, kind=kind: Message(
            RecordDict({"handled": ConfigRecord({"type": kind.type})}), reply_to=message))
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    for kind in protocol.KINDS:
        (message,) = kind.messages(RecordDict(), [1])
        message.metadata.__dict__["_message_id"] = "m1"
        assert message.metadata.message_type == kind.type
        assert app(message, context).content["handled"]["type"] == kind.type
    assert protocol.TRAIN.type == "train" and protocol.FISHER.type == "query.fisher"
    assert protocol.SEEDED_TYPES == {"train", "train.generator", "train.unlearn", "query.fisher"}


def test_the_training_config_keeps_the_entries_it_does_not_own():
    # as Flower's FedAvg sends it: the timeline's config, a phase's own entry, Flower's round
    record = ConfigRecord({"stage": 2, "phase": "debias", "log-prior": [0.1, 0.2], "server-round": 3})
    config = TrainConfig.from_record(record)
    assert (config.stage, config.phase, config.replay) == (2, "debias", None)
    assert config.entries == {"log-prior": [0.1, 0.2], "server-round": 3}
    sent = replace(config, local_steps=4, replay=ReplayOptions("mix")).to_record()
    assert dict(sent) == {"stage": 2, "phase": "debias", "log-prior": [0.1, 0.2], "server-round": 3,
                          "local-steps": 4, "replay-objective": "mix"}  # mix uses none of PGA's entries
    assert TrainConfig.from_record(sent) == replace(config, local_steps=4, replay=ReplayOptions("mix"))


@pytest.mark.parametrize("config", [
    EvaluateConfig(stage=3, split="train"), FisherQuery(max_samples=64), NodeState(train_calls=2, dp_history="[]"),
    UnlearnConfig("npo", "forget", local_steps=5, lr=1e-4, beta=2.0),
    GeneratorConfig([8, 16], embed_dim=32, heads=4, steps=10, batch_size=8, lr=1e-3),
])
def test_every_config_survives_the_wire_and_ignores_foreign_entries(config):
    record = config.to_record()
    assert type(config).from_record({**record, "server-round": 1}) == config


def test_wire_keys_and_missing_entries():
    assert dict(FisherQuery(64).to_record()) == {"max-samples": 64}
    assert dict(NodeState(3).to_record()) == {"train-calls": 3}  # no accountant without DP
    with pytest.raises(ValueError, match="'max-samples'"):
        FisherQuery.from_record({"server-round": 1})
    with pytest.raises(ValueError, match="unknown split 'holdout'"):
        EvaluateConfig.from_record({"split": "holdout"})
