"""Handler for membership inference against the received model on the site's own data
(``query.audit``, :mod:`sites.membership_inference`): ROC summaries leave the site, never a
per-sample score."""

import math

import torch
from flwr.app import Context, Message, MetricRecord

from .. import protocol, seeding
from ..membership_inference import site_audit
from ..protocol import RecordName, TrainConfig
from ..spec import SiteSpec
from ..tasks.capabilities import reference_sample
from .replies import reply
from .runtime import SiteRuntime


def audit(runtime: SiteRuntime, message: Message, context: Context) -> Message:
    """The attacks' ROC summaries on the site's members (training split) and non-members."""
    site, data = runtime.load(context)
    query = protocol.AUDIT.config_of(message)
    references = [reference_model(runtime, site, k, query.reference_steps, query.attack)
                  for k in range(query.reference_models)]
    dp = runtime.dp
    epsilon = None if dp is None else runtime.accountant(context).epsilon(dp.delta)
    metrics = site_audit(runtime.task, runtime.global_model(message), data, references, epsilon,
                         seeding.numpy_rng(runtime.seed, site.index, seeding.Stream.AUDIT), query.attack)
    return reply(message, {RecordName.AUDIT: MetricRecord(metrics)})


def reference_model(runtime: SiteRuntime, site: SiteSpec, k: int, steps: int, attack: str) -> torch.nn.Module:
    """Reference model ``k``: the federation's architecture and step budget, trained (without
    DP) on fresh data of the site's distribution. For the ``reference`` attack it starts from
    the federation's initialisation on one draw shared by all ``k``; for ``lira`` from an
    initialisation and a draw of its own (LiRA's Gaussians are the spread over training runs)."""
    task, seed = runtime.task, runtime.seed
    if attack == "lira":
        init_seed, draw_seed = (seeding.stream_seed(seed, site.index, seeding.Stream.LIRA_REFERENCE, k, purpose)
                                for purpose in range(2))
        sample = reference_sample(task, site, draw_seed)
    else:
        init_seed = seeding.stream_seed(seed, seeding.Stream.MODEL_INIT)
        sample = runtime.made_once(site, "reference", lambda: reference_sample(task, site, seed))
    torch.manual_seed(init_seed)
    model = task.build_model()
    for call in range(math.ceil(steps / task.local_steps)):
        task.train(model, sample, seeding.stream_seed(seed, site.index, seeding.Stream.AUDIT, k, call), TrainConfig())
    return model
