"""The stage view: a strategy sees and reaches only present sites; replies come in site order."""

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.common.constant import ErrorCode
from flwr.serverapp.strategy import FedAvg
from helpers.fake_grid import CannedGrid

from server.site_grid import SiteGrid
from sites.errors import SiteError
from sites.faults import CRASH_CODE

SITE_OF_NODE = {101: "A", 205: "B", 307: "C"}


class FakeGrid(CannedGrid):
    """Nodes A, B, C that reply to every message at once; some fail, go down (a simulated
    crash), reply with a NaN loss (an invalid reply) or stay silent."""

    def __init__(self, failing=(), silent=(), crashing=(), down_code=CRASH_CODE, diverging=()):
        super().__init__(SITE_OF_NODE, self._answer)
        self.failing, self.silent, self.crashing, self.down_code = set(failing), set(silent), set(crashing), down_code
        self.diverging = set(diverging)

    def _answer(self, message):
        node = message.metadata.dst_node_id
        if node in self.silent:
            return None
        if node in self.failing:
            return Error(code=0, reason="ValueError: broken scanner")
        if node in self.crashing:
            return Error(code=self.down_code, reason="SiteCrash: simulated")
        loss = float("nan") if node in self.diverging else 0.5
        return RecordDict({"metrics": MetricRecord({"num-examples": 1, "node": node, "train_loss": loss})})

    def send_and_receive(self, messages, *, timeout=None):
        raise AssertionError("the view must push and pull itself")


def _train_messages(nodes):
    return [Message(RecordDict(), dst_node_id=node, message_type="train") for node in nodes]


def test_view_shows_only_present_sites_in_site_order():
    view = SiteGrid(FakeGrid(), SITE_OF_NODE, ["C", "A"])
    assert view.get_node_ids() == [307, 101]


def test_messages_to_absent_sites_are_refused():
    view = SiteGrid(FakeGrid(), SITE_OF_NODE, ["A"])
    with pytest.raises(SiteError, match="site B: a strategy addressed a site that is not present"):
        view.send_and_receive(_train_messages([205]))


def test_replies_come_back_in_site_order_and_reach_the_listener():
    heard = []
    view = SiteGrid(FakeGrid(), SITE_OF_NODE, ["A", "B", "C"], listener=lambda kind, pairs: heard.append((kind, pairs)))
    replies = view.send_and_receive(_train_messages([307, 101, 205]), timeout=5)
    assert [r.metadata.src_node_id for r in replies] == [101, 205, 307]
    assert heard[0][0] == "train" and [site for site, _ in heard[0][1]] == ["A", "B", "C"]


def test_an_error_reply_names_the_site():
    view = SiteGrid(FakeGrid(failing={205}), SITE_OF_NODE, ["A", "B"])
    with pytest.raises(SiteError, match="site B: ValueError: broken scanner"):
        view.send_and_receive(_train_messages([101, 205]), timeout=5)


def test_a_silent_site_is_named_after_the_timeout():
    view = SiteGrid(FakeGrid(silent={307}), SITE_OF_NODE, ["A", "C"])
    with pytest.raises(SiteError, match="site C: no reply within 0.05 s"):
        view.send_and_receive(_train_messages([101, 307]), timeout=0.05)


def test_an_unmodified_flower_strategy_samples_only_the_stage():
    grid = FakeGrid()
    view = SiteGrid(grid, SITE_OF_NODE, ["B"])
    strategy = FedAvg(min_available_nodes=1, min_train_nodes=1, min_evaluate_nodes=1)
    messages = list(strategy.configure_train(1, ArrayRecord(), ConfigRecord(), view))
    assert [m.metadata.dst_node_id for m in messages] == [205]


@pytest.mark.parametrize("code", [CRASH_CODE, ErrorCode.NODE_UNAVAILABLE])
def test_a_site_that_went_down_is_reported_and_left_out_when_failures_are_tolerated(code):
    failures, seen = [], []
    view = SiteGrid(FakeGrid(crashing={205}, down_code=code), SITE_OF_NODE, ["A", "B", "C"],
                    listener=lambda kind, pairs: seen.append([site for site, _ in pairs]),
                    on_failure=lambda kind, pairs: failures.append((kind, pairs)))
    replies = view.send_and_receive(_train_messages([101, 205, 307]))
    assert [r.content["metrics"]["node"] for r in replies] == [101, 307]
    assert failures == [("train", [("B", "SiteCrash: simulated")])]
    assert seen == [["A", "C"]]


def test_a_crash_is_an_error_like_any_other_without_a_failure_listener():
    view = SiteGrid(FakeGrid(crashing={205}), SITE_OF_NODE, ["A", "B"])
    with pytest.raises(SiteError, match="site B: SiteCrash"):
        view.send_and_receive(_train_messages([101, 205]))


def test_a_site_error_still_stops_the_run_when_crashes_are_tolerated():
    view = SiteGrid(FakeGrid(failing={101}), SITE_OF_NODE, ["A", "B"], on_failure=lambda kind, pairs: None)
    with pytest.raises(SiteError, match="site A: ValueError: broken scanner"):
        view.send_and_receive(_train_messages([101, 205]))


def test_an_invalid_reply_is_reported_and_left_out_when_failures_are_tolerated():
    failures, seen = [], []
    view = SiteGrid(FakeGrid(diverging={101}, crashing={307}), SITE_OF_NODE, ["A", "B", "C"],
                    listener=lambda kind, pairs: seen.append([site for site, _ in pairs]),
                    on_failure=lambda kind, pairs: failures.append((kind, pairs)))
    replies = view.send_and_receive(_train_messages([101, 205, 307]))
    assert [r.content["metrics"]["node"] for r in replies] == [205]
    assert failures == [("train", [("A", "invalid reply: metric train_loss is nan"), ("C", "SiteCrash: simulated")])]
    assert seen == [["B"]]


def test_an_invalid_reply_stops_the_run_without_a_failure_listener():
    view = SiteGrid(FakeGrid(diverging={205}), SITE_OF_NODE, ["A", "B"])
    with pytest.raises(SiteError, match="site B: invalid reply: metric train_loss is nan"):
        view.send_and_receive(_train_messages([101, 205]))


def test_only_training_replies_are_checked():
    view = SiteGrid(FakeGrid(diverging={205}), SITE_OF_NODE, ["A", "B"])
    messages = [Message(RecordDict(), dst_node_id=node, message_type="evaluate") for node in (101, 205)]
    assert len(view.send_and_receive(messages)) == 2


def test_every_message_is_shown_to_the_send_hook_before_it_leaves():
    grid, sent = FakeGrid(), []
    view = SiteGrid(grid, SITE_OF_NODE, ["A", "C"], on_send=lambda messages: sent.extend(messages))
    view.send_and_receive(_train_messages([101, 307]))
    assert [m.metadata.dst_node_id for m in sent] == [101, 307] and len(grid.sent) == 2
