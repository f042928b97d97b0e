"""Handler that measures the received model on one of the site's splits (``evaluate``)."""

from flwr.app import Context, Message, MetricRecord

from .. import protocol
from ..protocol import RecordName
from .replies import reply
from .runtime import SiteRuntime


def evaluate(runtime: SiteRuntime, message: Message, context: Context) -> Message:
    """The primary and secondary metrics of the received model on the site's test split (with
    ``split: validation``, its validation split; with ``split: train``, its training split: the
    forget and retain sets of a withdrawal)."""
    site, data = runtime.load(context)
    split = protocol.EVALUATE.config_of(message).split
    evaluated = {"train": data.train, "validation": data.validation, "test": data.test}[split]
    if evaluated is None:
        raise ValueError(f"site {site.id} has no validation split to evaluate on (evaluate_split=validation; "
                         "a manifest must name validation rows)")
    metrics = runtime.task.evaluate_on_device(runtime.global_model(message), evaluated)
    return reply(message, {RecordName.METRICS: MetricRecord(metrics)})
