"""Handlers that train the received model at the site: a training round (``train``) and the
site's part of an unlearning round (``train.unlearn``). Both reply with the model and its
metrics; with DP, with the metrics ``privacy.train_metrics`` releases and the accountant's
history."""

from collections.abc import Callable
from dataclasses import replace

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord

from .. import protocol, seeding
from ..alignment_meter import AlignmentMeter
from ..faults import SiteCrash
from ..privacy import PrivateTraining
from ..protocol import AccountantHistory, MetricKey, RecordName, model_record
from ..unlearning import unlearn
from .objectives import TrainingCall, local_objective
from .replies import reply
from .runtime import SiteRuntime, keep, node_state


def train(runtime: SiteRuntime, message: Message, context: Context) -> Message:
    """``train``: local training of the received global model on the site's training split, on
    the objective the message asks for (:mod:`sites.client.objectives`). Simulated faults may
    crash the call or spoil its reply (:mod:`sites.faults`)."""
    site, data = runtime.load(context)
    task, faults = runtime.task, runtime.faults
    model = runtime.global_model(message)
    privacy = runtime.private_training(site, data, context)
    config = protocol.TRAIN.config_of(message)
    call_seed = runtime.next_call_seed(site, context)
    call = node_state(context).train_calls
    if faults.crashes(runtime.seed, site.index, call):
        raise SiteCrash(f"simulated crash in training call {call} (faults.crash_prob={faults.crash_prob})")
    # Under DP the meter's extra backward passes would run through Opacus's per-sample hooks.
    meter = AlignmentMeter() if privacy is None else None
    objective = local_objective(TrainingCall(task, model, data.train, message, config, call_seed, meter))
    metrics = task.train(model, data.train, seed=call_seed, config=config, privacy=privacy, objective=objective)
    metrics |= meter.metrics() if meter is not None else {}
    trained = model.state_dict()
    if faults.spoils(runtime.seed, site, call):
        trained, metrics = faults.spoil(trained, model_record(message).to_torch_state_dict(), metrics)
    return trained_reply(runtime, message, context, trained, metrics, privacy,
                         lambda: task.sample_losses(model, data.train), call_seed)


def unlearn_site(runtime: SiteRuntime, message: Message, context: Context) -> Message:
    """``train.unlearn``: the site's part of an unlearning round (:mod:`sites.unlearning`): the
    forget objective at a withdrawing site, the retain objective at the others; with DP, as
    DP-SGD charged to the site's accountant like training."""
    site, data = runtime.load(context)
    task = runtime.task
    model = runtime.model(message.content[RecordName.MODEL])
    privacy = runtime.private_training(site, data, context)
    call_seed = runtime.next_call_seed(site, context)
    metrics = unlearn(task, model, runtime.model(message.content[RecordName.REFERENCE]), data.train,
                      protocol.UNLEARN.config_of(message), seed=call_seed, privacy=privacy)
    return trained_reply(runtime, message, context, model.state_dict(), metrics, privacy,
                         lambda: task.sample_losses(model, data.train), call_seed)


def trained_reply(runtime: SiteRuntime, message: Message, context: Context, trained: dict[str, torch.Tensor],
                  metrics: dict[str, float], privacy: PrivateTraining | None,
                  sample_losses: Callable[[], torch.Tensor], call_seed: int) -> Message:
    """The reply after local steps: the model's arrays (``trained``) and metrics.

    With DP, the metrics are those ``privacy.train_metrics`` releases (``sample_losses``: the
    trained model's per-sample losses on the training split, for ``noise``, whose noise
    ``call_seed`` seeds); the accountant's new history is kept in the node state and sent, and
    the metrics gain the epsilon spent so far.
    """
    records = {RecordName.MODEL: ArrayRecord(trained)}
    dp = runtime.dp
    if privacy is not None:
        metrics = dp.released_metrics(metrics, sample_losses, privacy.accountant,
                                      seeding.stream_seed(call_seed, seeding.Stream.DP_METRICS))
        history = privacy.accountant.to_json()
        keep(context, replace(node_state(context), dp_history=history))
        metrics[MetricKey.EPSILON] = privacy.accountant.epsilon(dp.delta)
        records[RecordName.ACCOUNTANT] = AccountantHistory(history).to_record()
    records[RecordName.METRICS] = MetricRecord(metrics)
    return reply(message, records)
