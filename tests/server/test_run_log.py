"""``metrics.jsonl`` (server/run_log.py): one event per reply with its metrics and a description
of everything it carried, the round counter, and a resumed run's log cut back to its checkpoint."""

import json

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from server.run_log import RunLog, describe_content


def _reply(**records) -> Message:
    return Message(RecordDict(records), dst_node_id=0, message_type="train")


def _events(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_description_names_every_record_and_what_it_held():
    reply = _reply(arrays=ArrayRecord({"w": torch.zeros(2, 3)}), metrics=MetricRecord({"loss": 0.5, "hist": [1, 2, 3]}),
                   site=ConfigRecord({"site-id": "A"}))
    assert describe_content(reply) == {"arrays": {"kind": "arrays", "shapes": {"w": [2, 3]}},
                                       "metrics": {"kind": "metrics", "lengths": {"loss": None, "hist": 3}},
                                       "site": {"kind": "config", "values": {"site-id": "A"}}}


def test_each_reply_is_an_event_with_its_metrics_and_training_advances_the_round(tmp_path):
    rounds, heard = [], []
    log = RunLog(tmp_path / "metrics.jsonl", on_round=lambda stage, r: rounds.append((stage, r)), on_event=heard.append)
    log.stage = 3
    replies = [("A", _reply(metrics=MetricRecord({"loss": 0.5}), extra=MetricRecord({"seconds": 2.0}))),
               ("B", _reply(metrics=MetricRecord({"loss": 0.25})))]
    log.listener()("train", replies)
    log.listener()("query.statistics", [("A", _reply(statistics=MetricRecord({"n": 4.0})))])
    log.listener("withdrawal")("train.unlearn", [("B", _reply(metrics=MetricRecord({"loss": 1.0})))])
    log.close()
    events = _events(tmp_path / "metrics.jsonl")
    # a training exchange is one round, whatever follows it; an exchange named for its purpose is not
    assert [(e["event"], e["stage"], e["round"], e["site"], e["metrics"]) for e in events] == [
        ("train", 3, 1, "A", {"loss": 0.5, "seconds": 2.0}), ("train", 3, 1, "B", {"loss": 0.25}),
        ("statistics", 3, 1, "A", {"n": 4.0}), ("withdrawal", 3, 1, "B", {"loss": 1.0})]
    assert events[0]["content"]["extra"] == {"kind": "metrics", "lengths": {"seconds": None}}
    assert rounds == [(3, 1)] and log.round == 1
    assert heard == events  # what experiment tracking is told is what is on disk


def test_a_resumed_log_drops_what_followed_its_mark_and_counts_rounds_on(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = RunLog(path)
    log.listener()("train", [("A", _reply(metrics=MetricRecord({"loss": 0.5})))])
    mark = log.mark()
    log.listener()("train", [("A", _reply(metrics=MetricRecord({"loss": 0.4})))])
    log.close()
    assert mark == {"offset": len(path.read_bytes().splitlines(keepends=True)[0]), "round": 1}
    resumed = RunLog(path, resume_from=mark)
    resumed.write("resumed")
    resumed.listener()("train", [("A", _reply(metrics=MetricRecord({"loss": 0.3})))])
    resumed.close()
    assert [(e["event"], e["round"], e.get("metrics")) for e in _events(path)] == [
        ("train", 1, {"loss": 0.5}), ("resumed", 1, None), ("train", 2, {"loss": 0.3})]
