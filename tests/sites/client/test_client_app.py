"""The site's ClientApp, called directly as Flower's engine would call it."""

import json
from dataclasses import replace

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp.mod import fixedclipping_mod
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM
from opacus.accountants import RDPAccountant

from sites import seeding
from sites.client import build_client_app
from sites.config import parse
from sites.faults import CRASH_CODE, FaultConfig
from sites.privacy import Privacy
from sites.protocol import AccountantHistory, UnlearnConfig
from sites.spec import ScannerSignature, SiteSpec
from sites.tasks import build_task

SITES = [
    SiteSpec(id="A", name="a", index=0, scanner=ScannerSignature(contrast=0.3)),
    SiteSpec(id="B", name="b", index=1, scanner=ScannerSignature(contrast=-0.3)),
]


def _context(partition: int) -> Context:
    return Context(run_id=1, node_id=10 + partition, node_config={"partition-id": partition, "num-partitions": 2},
                   state=RecordDict(), run_config={})


def _message(kind: str, arrays: ArrayRecord | None = None, **config) -> Message:
    content = RecordDict({"config": ConfigRecord(config)})
    if arrays is not None:
        content["arrays"] = arrays
    message = Message(content, dst_node_id=10, message_type=kind)
    message.metadata.__dict__["_message_id"] = "m1"
    return message


def _global_arrays(task) -> ArrayRecord:
    torch.manual_seed(0)
    return ArrayRecord(task.build_model().state_dict())


def test_query_names_the_site_and_checks_its_data(small_task):
    app = build_client_app(small_task, SITES, seed=0, num_threads=1)
    assert app(_message("query"), _context(0)).content["site"]["site-id"] == "A"
    reply = app(_message("query.data"), _context(0))
    assert dict(reply.content["data"]) == {"n-train": 16, "n-test": 8}


def test_a_failing_data_generator_becomes_an_error_reply(small_task, monkeypatch):
    def unreadable(site, seed):
        raise ValueError(f"cannot read the images of site {site.id}")

    monkeypatch.setattr(small_task, "load_site", unreadable)
    app = build_client_app(small_task, SITES, seed=0, num_threads=1)
    reply = app(_message("query.data"), _context(1))
    assert reply.has_error()
    assert reply.error.reason == "ValueError: cannot read the images of site B"


def test_train_returns_new_arrays_and_fedavg_metrics(small_task):
    app = build_client_app(small_task, SITES, seed=0, num_threads=1)
    arrays = _global_arrays(small_task)
    reply = app(_message("train", arrays), _context(0))
    assert reply.content["metrics"]["num-examples"] == 16
    trained = reply.content["arrays"].to_torch_state_dict()
    start = arrays.to_torch_state_dict()
    assert set(trained) == set(start)
    assert any(not torch.equal(trained[k], start[k]) for k in start)


def test_training_is_seeded_by_the_sites_call_count(small_task):
    app = build_client_app(small_task, SITES, seed=0, num_threads=1)
    arrays = _global_arrays(small_task)
    context = _context(0)
    first = app(_message("train", arrays), context).content["metrics"]["train_loss"]
    second = app(_message("train", arrays), context).content["metrics"]["train_loss"]
    replay = app(_message("train", arrays), _context(0)).content["metrics"]["train_loss"]
    assert first == replay  # a fresh node state replays the first call exactly
    assert first != second  # the second call draws other batches


def test_evaluate_reports_the_primary_metric(small_task):
    app = build_client_app(small_task, SITES, seed=0, num_threads=1)
    reply = app(_message("evaluate", _global_arrays(small_task)), _context(0))
    metrics = reply.content["metrics"]
    assert 0.0 <= metrics["dice"] <= 1.0 and metrics["num-examples"] == 8
    assert "arrays" not in reply.content


@pytest.mark.parametrize("split, size", [("train", 16), ("validation", 6), ("test", 8)])
def test_evaluate_measures_the_split_it_is_asked_for(small_task, split, size):
    app = build_client_app(small_task, SITES, seed=0, num_threads=1)
    reply = app(_message("evaluate", _global_arrays(small_task), split=split), _context(0))
    assert reply.content["metrics"]["num-examples"] == size


def test_evaluating_a_validation_split_a_site_lacks_is_an_error_naming_the_site(small_task, monkeypatch):
    load_site = small_task.load_site
    monkeypatch.setattr(small_task, "load_site", lambda site, seed: replace(load_site(site, seed), validation=None))
    app = build_client_app(small_task, SITES, seed=0, num_threads=1)
    reply = app(_message("evaluate", _global_arrays(small_task), split="validation"), _context(1))
    assert reply.has_error() and "site B has no validation split" in reply.error.reason


def test_fedprox_mu_from_the_strategy_config_changes_training(small_task, small_task_config):
    app = build_client_app(build_task({**small_task_config, "lr": 0.05}), SITES, seed=0, num_threads=1)
    arrays = _global_arrays(small_task)
    plain = app(_message("train", arrays), _context(0)).content["arrays"].to_torch_state_dict()
    prox = app(_message("train", arrays, **{"proximal-mu": 10.0}), _context(0)).content["arrays"].to_torch_state_dict()
    start = arrays.to_torch_state_dict()

    def drift(state):
        return sum((state[k].float() - start[k].float()).pow(2).sum().item() for k in start)

    assert drift(prox) < drift(plain)


def test_a_train_mod_clips_the_update_a_client_side_dp_wrapper_asks_for(small_task):
    app = build_client_app(small_task, SITES, seed=0, num_threads=1, train_mods=[fixedclipping_mod])
    arrays = _global_arrays(small_task)
    reply = app(_message("train", arrays, **{KEY_CLIPPING_NORM: 0.01}), _context(0))
    trained, start = reply.content["arrays"].to_torch_state_dict(), arrays.to_torch_state_dict()
    update = sum((trained[k] - start[k]).pow(2).sum().item() for k in start) ** 0.5
    assert update == pytest.approx(0.01, rel=1e-3)  # unclipped, training moves it about 0.3
    assert "train_loss" in reply.content["metrics"]


def test_a_node_set_back_by_query_resume_trains_as_it_did_at_that_call(small_task):
    app = build_client_app(small_task, SITES, seed=0, num_threads=1)
    arrays = _global_arrays(small_task)
    running = _context(0)
    app(_message("train", arrays), running)
    second = app(_message("train", arrays), running).content["arrays"].to_torch_state_dict()
    fresh = _context(0)
    assert app(_message("query.resume", **{"train-calls": 1}), fresh).content["site"]["site-id"] == "A"
    resumed = app(_message("train", arrays), fresh).content["arrays"].to_torch_state_dict()
    assert all(torch.equal(second[k], resumed[k]) for k in second)


def test_a_simulated_crash_is_an_error_reply_with_the_crash_code(small_task):
    app = build_client_app(small_task, SITES, seed=0, num_threads=1, faults=FaultConfig(crash_prob=1.0))
    reply = app(_message("train", _global_arrays(small_task)), _context(0))
    assert reply.has_error() and reply.error.code == CRASH_CODE
    assert "simulated crash in training call 1" in reply.error.reason


def test_with_dp_an_unlearning_call_is_charged_to_the_nodes_accountant_and_sent_back(small_task):
    dp = parse(Privacy, {"method": "dp", "noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": 1e-5}, "privacy")
    app = build_client_app(small_task, SITES, seed=0, num_threads=1, dp=dp)
    arrays = _global_arrays(small_task)
    node = _context(1)
    app(_message("train", arrays), node)  # the task's 3 local steps
    unlearning = _message("train.unlearn", arrays, **dict(UnlearnConfig("ga", "forget", 2, 1e-4).to_record()))
    unlearning.content["reference"] = arrays
    reply = app(unlearning, node)
    history = AccountantHistory.from_record(reply.content["accountant"]).dp_history
    assert json.loads(history) == [[1.0, 0.5, 5]]  # 3 + 2 steps at rate batch / n = 8 / 16
    direct = RDPAccountant()
    direct.history = [(1.0, 0.5, 5)]
    assert reply.content["metrics"]["epsilon"] == pytest.approx(direct.get_epsilon(1e-5))
    # the node keeps it: its next training call adds to the same accountant
    again = app(_message("train", arrays), node).content["accountant"]
    assert json.loads(AccountantHistory.from_record(again).dp_history) == [[1.0, 0.5, 8]]


def _train_reply(task, faults: FaultConfig, partition: int = 0) -> tuple[dict, dict, dict]:
    """A first training call of the site at ``partition``: its arrays, its metrics, and the arrays sent."""
    arrays = _global_arrays(task)
    reply = build_client_app(task, SITES, seed=0, num_threads=1, faults=faults)(_message("train", arrays),
                                                                                _context(partition))
    return reply.content["arrays"].to_torch_state_dict(), dict(reply.content["metrics"]), arrays.to_torch_state_dict()


def test_a_nan_reply_is_a_diverged_site(small_task):
    trained, metrics, _ = _train_reply(small_task, FaultConfig(bad_reply_prob=1.0, bad_reply="nan"))
    assert all(value.isnan().all() for value in trained.values() if value.is_floating_point())
    assert metrics["train_loss"] != metrics["train_loss"] and metrics["num-examples"] == 16


def test_a_shape_reply_has_one_row_too_many_in_the_first_array(small_task):
    trained, _, sent = _train_reply(small_task, FaultConfig(bad_reply_prob=1.0, bad_reply="shape"))
    first = next(iter(sent))
    assert trained[first].shape[0] == sent[first].shape[0] + 1
    assert all(trained[key].shape == sent[key].shape for key in sent if key != first)


def test_a_scale_reply_multiplies_the_sites_update(small_task):
    honest, honest_metrics, sent = _train_reply(small_task, FaultConfig())
    scaled, metrics, _ = _train_reply(small_task, FaultConfig(bad_reply_prob=1.0, bad_reply="scale",
                                                              bad_reply_scale=10.0))
    assert metrics == honest_metrics
    for key, value in sent.items():
        if value.is_floating_point():
            assert torch.allclose(scaled[key] - value, 10.0 * (honest[key] - value), atol=1e-5)
        else:
            assert torch.equal(scaled[key], honest[key])


def test_only_the_named_sites_spoil_their_replies(small_task):
    faults = FaultConfig(bad_reply_prob=1.0, bad_reply="nan", bad_reply_sites=["B"])
    site_a, _, _ = _train_reply(small_task, faults, partition=0)
    site_b, _, _ = _train_reply(small_task, faults, partition=1)
    assert not any(value.isnan().any() for value in site_a.values() if value.is_floating_point())
    assert all(value.isnan().all() for value in site_b.values() if value.is_floating_point())


def _dp_train_reply(task, train_metrics: str) -> Message:
    dp = parse(Privacy, {"method": "dp", "noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": 1e-5,
                         "train_metrics": train_metrics, "train_loss_clip": 2.0, "train_loss_noise": 3.0}, "privacy")
    return build_client_app(task, SITES, seed=0, num_threads=1, dp=dp)(_message("train", _global_arrays(task)),
                                                                      _context(1))


def test_with_dp_withheld_training_metrics_leave_only_the_example_count_and_epsilon(small_task):
    withheld, released = (_dp_train_reply(small_task, mode) for mode in ("withhold", "release"))
    assert set(withheld.content["metrics"]) == {"num-examples", "epsilon"}
    assert "train_loss" in released.content["metrics"]
    assert withheld.content["metrics"]["epsilon"] == released.content["metrics"]["epsilon"]  # nothing else charged


def test_with_dp_a_noised_training_loss_is_the_gaussian_mechanism_on_the_trained_model_and_is_charged(small_task):
    reply = _dp_train_reply(small_task, "noise")
    model = small_task.build_model()
    model.load_state_dict(reply.content["arrays"].to_torch_state_dict())
    losses = small_task.sample_losses(model, small_task.site_data(SITES[1], 0).train).double()
    call_seed = seeding.stream_seed(0, 1, seeding.Stream.LOCAL_TRAINING, 1)
    z = torch.randn((), generator=torch.Generator().manual_seed(
        seeding.stream_seed(call_seed, seeding.Stream.DP_METRICS)), dtype=torch.float64).item()
    metrics = reply.content["metrics"]
    assert metrics["train_loss"] == pytest.approx(float((losses.clamp(0, 2.0).sum() + 3.0 * 2.0 * z) / 16))
    history = json.loads(AccountantHistory.from_record(reply.content["accountant"]).dp_history)
    assert history == [[1.0, 0.5, 3], [3.0, 1.0, 1, "train_loss"]]  # 3 DP-SGD steps, then the loss
    composed = RDPAccountant()
    composed.history = [(1.0, 0.5, 3), (3.0, 1.0, 1)]
    assert metrics["epsilon"] == pytest.approx(composed.get_epsilon(1e-5))
    assert metrics["epsilon"] > _dp_train_reply(small_task, "withhold").content["metrics"]["epsilon"]
    assert metrics["train_loss"] != _dp_train_reply(small_task, "release").content["metrics"]["train_loss"]


def test_an_audit_with_lira_trains_reference_models_of_their_own_and_runs_every_attack(small_task):
    app = build_client_app(small_task, SITES, seed=0, num_threads=1)
    replies = {attack: dict(app(_message("query.audit", _global_arrays(small_task), **{
        "reference-models": 2, "reference-steps": 3, "attack": attack}), _context(0)).content["audit"])
        for attack in ("reference", "lira")}
    assert "lira-auc" not in replies["reference"] and 0 <= replies["lira"]["lira-auc"] <= 1
    assert replies["lira"]["loss-auc"] == replies["reference"]["loss-auc"]  # the same audited model
    # LiRA's reference models start and train elsewhere, so the mean-loss calibration moves
    assert replies["lira"]["reference-roc"] != replies["reference"]["reference-roc"]
