"""Handlers that answer the server's questions about the site: which site a node is, its data,
its counts, its Fisher information, its exemplars; and the state a resumed run sets back."""

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord
from torch.utils.data import TensorDataset

from .. import protocol, seeding
from ..ewc import fisher_diagonal
from ..protocol import DataReport, MetricKey, RecordName
from ..replay import pack_domains
from .replies import identity, reply
from .runtime import SiteRuntime, keep


def identify(runtime: SiteRuntime, message: Message, context: Context) -> Message:
    """``query``: which site this node plays."""
    return identity(runtime.site(context), message)


def check_data(runtime: SiteRuntime, message: Message, context: Context) -> Message:
    """``query.data``: load the site's data now and report its split sizes, so that bad data
    (or, with DP, an unreachable target epsilon) stops a run before any training."""
    site, data = runtime.load(context)
    noise = None if runtime.dp is None else runtime.noise_multiplier(site, data)
    return reply(message, {RecordName.DATA: DataReport(len(data.train), len(data.test), noise).to_record()})


def report_statistics(runtime: SiteRuntime, message: Message, context: Context) -> Message:
    """``query.statistics``: the counts the task needs summed across sites before a phase
    (e.g. label x pseudo-bias counts); counts only, never samples."""
    _, data = runtime.load(context)
    counts = runtime.task.site_statistics(runtime.global_model(message), data, protocol.STATISTICS.config_of(message))
    return reply(message, {RecordName.STATISTICS: MetricRecord(counts)})


def report_fisher(runtime: SiteRuntime, message: Message, context: Context) -> Message:
    """``query.fisher``: the diagonal Fisher information of the received model on the training
    split (EWC, :mod:`sites.ewc`)."""
    site, data = runtime.load(context)
    task = runtime.task
    fisher = fisher_diagonal(task, runtime.global_model(message), data.train,
                             protocol.FISHER.config_of(message).max_samples, runtime.next_call_seed(site, context),
                             task.compute)
    return reply(message, {RecordName.FISHER: ArrayRecord(fisher),
                           RecordName.METRICS: MetricRecord({MetricKey.NUM_EXAMPLES: len(data.train)})})


def share_exemplars(runtime: SiteRuntime, message: Message, context: Context) -> Message:
    """``query.exemplars``: training samples handed to the server. The real-buffer reference
    breaks the privacy rule on purpose, to show what replay from real data would give; reports
    label it so."""
    site, data = runtime.load(context)
    count = min(len(data.train), protocol.EXEMPLARS.config_of(message).count)
    chosen = seeding.numpy_rng(runtime.seed, site.index, seeding.Stream.REPLAY).permutation(len(data.train))[:count]
    exemplars = TensorDataset(*(tensor[torch.from_numpy(chosen)] for tensor in data.train.tensors))
    return reply(message, {RecordName.EXEMPLARS: pack_domains({site.id: exemplars})})


def resume(runtime: SiteRuntime, message: Message, context: Context) -> Message:
    """``query.resume``: set the node's state back to what the server keeps of it (a resumed
    run, and a withdrawal after the oracle's uncharged retraining)."""
    keep(context, protocol.RESUME.config_of(message))
    return identity(runtime.site(context), message)
