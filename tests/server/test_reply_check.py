"""The check of a training reply against the message it answers, on hand-built messages."""

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from server.reply_check import reply_problem
from sites.protocol import EVALUATE, TRAIN, TRAIN_GENERATOR


def _model(**changes) -> dict[str, torch.Tensor]:
    return {"conv.weight": torch.ones(4, 3), "norm.count": torch.tensor(7), **changes}


def _sent(kind=TRAIN, model_key="arrays", **records) -> Message:
    content = RecordDict({model_key: ArrayRecord(_model()), "config": ConfigRecord({"stage": 1}), **records})
    message = kind.message(content, 5)
    message.metadata.__dict__["_message_id"] = "m1"
    return message


def _reply(sent: Message, arrays=None, metrics=None, **records) -> Message:
    content = RecordDict({"arrays": ArrayRecord(_model() if arrays is None else arrays),
                          "metrics": MetricRecord({"train_loss": 0.5, "num-examples": 16}
                                                  if metrics is None else metrics),
                          **records})
    return Message(content, reply_to=sent)


def test_a_reply_with_the_arrays_sent_and_finite_metrics_may_be_aggregated():
    sent = _sent()
    assert reply_problem(sent, _reply(sent)) is None
    # with DP, the accountant's history comes back too
    assert reply_problem(sent, _reply(sent, accountant=ConfigRecord({"dp-history": "[]"}))) is None


def test_another_precision_of_the_same_kind_may_be_aggregated():
    # Flower's QFedAvg sends float64 arrays after its first round; the site's model answers in float32.
    sent = _sent()
    sent.content["arrays"] = ArrayRecord(_model(**{"conv.weight": torch.ones(4, 3, dtype=torch.float64)}))
    assert reply_problem(sent, _reply(sent)) is None


def test_the_model_is_compared_with_what_the_strategy_sent_under_its_own_key():
    sent = _sent(model_key="global")
    assert reply_problem(sent, _reply(sent)) is None
    assert reply_problem(sent, _reply(sent, _model(**{"conv.weight": torch.ones(3, 3)}))) == \
        "array 'conv.weight' has shape (3, 3) instead of (4, 3)"


@pytest.mark.parametrize("arrays, metrics, problem", [
    (_model(**{"conv.weight": torch.ones(3, 3)}), None, "array 'conv.weight' has shape (3, 3) instead of (4, 3)"),
    (_model(**{"conv.weight": torch.ones(4, 3, dtype=torch.int32)}), None,
     "array 'conv.weight' has dtype int32 instead of one like float32"),
    (_model(**{"norm.count": torch.tensor(7.0)}), None,
     "array 'norm.count' has dtype float32 instead of one like int64"),
    (_model(**{"conv.weight": torch.full((4, 3), float("nan"))}), None, "non-finite values in 'conv.weight'"),
    (_model(**{"conv.weight": torch.tensor([[1.0, 2.0, float("inf")]] * 4)}), None,
     "non-finite values in 'conv.weight'"),
    ({"conv.weight": torch.ones(4, 3)}, None, "array 'norm.count' is missing"),
    (_model(extra=torch.ones(2)), None, "unexpected array 'extra'"),
    (None, {"train_loss": float("nan"), "num-examples": 16}, "metric train_loss is nan"),
    (None, {"train_loss": 0.5, "num-examples": 16, "curve": [0.1, float("-inf")]},
     "metric curve has non-finite values"),
])
def test_an_invalid_reply_is_named_by_its_first_problem(arrays, metrics, problem):
    sent = _sent()
    assert reply_problem(sent, _reply(sent, arrays, metrics)) == problem


def test_a_record_the_kind_does_not_declare_is_refused():
    sent = _sent()
    assert reply_problem(sent, _reply(sent, extra=MetricRecord({"x": 1.0}))) == \
        "undeclared metrics record 'extra' in a train reply"
    assert reply_problem(sent, _reply(sent, accountant=ArrayRecord(_model()))) == \
        "undeclared arrays record 'accountant' in a train reply"


def test_every_array_record_of_a_generator_reply_is_compared_with_the_one_sent_under_its_name():
    prompt = ArrayRecord({"prompt": torch.zeros(2, 8)})
    content = RecordDict({"generator": ArrayRecord(_model()), "prompt": prompt, "config": ConfigRecord()})
    sent = TRAIN_GENERATOR.message(content, 5)
    sent.metadata.__dict__["_message_id"] = "m1"
    valid = RecordDict({"generator": ArrayRecord(_model()), "prompt": prompt,
                        "metrics": MetricRecord({"seconds": 1.0})})
    assert reply_problem(sent, Message(valid, reply_to=sent)) is None
    valid["prompt"] = ArrayRecord({"prompt": torch.zeros(3, 8)})
    assert reply_problem(sent, Message(valid, reply_to=sent)) == "array 'prompt' has shape (3, 8) instead of (2, 8)"


def test_replies_that_are_not_training_replies_are_not_checked():
    sent = EVALUATE.message(RecordDict({"arrays": ArrayRecord(_model())}), 5)
    sent.metadata.__dict__["_message_id"] = "m1"
    reply = Message(RecordDict({"metrics": MetricRecord({"dice": float("nan")})}), reply_to=sent)
    assert reply_problem(sent, reply) is None
