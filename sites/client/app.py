"""The ClientApp: which handler answers each kind of message."""

import functools
from collections.abc import Callable

from flwr.app import Context, Error, Message
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable, Mod

from .. import protocol
from ..faults import FaultConfig
from ..privacy import DPConfig
from ..protocol import MessageKind
from ..spec import SiteSpec
from ..tasks import Task
from . import audit, evaluation, generator, queries, training
from .runtime import SiteRuntime

# Flower's error code range for application errors raised inside a ClientApp.
SITE_ERROR_CODE = 0

#: ``handler(runtime, message, context)``: a message kind's answer.
Handler = Callable[[SiteRuntime, Message, Context], Message]

HANDLERS: dict[MessageKind, Handler] = {
    protocol.IDENTIFY: queries.identify,
    protocol.CHECK_DATA: queries.check_data,
    protocol.STATISTICS: queries.report_statistics,
    protocol.FISHER: queries.report_fisher,
    protocol.EXEMPLARS: queries.share_exemplars,
    protocol.RESUME: queries.resume,
    protocol.TRAIN: training.train,
    protocol.UNLEARN: training.unlearn_site,
    protocol.TRAIN_GENERATOR: generator.train_site_generator,
    protocol.EVALUATE: evaluation.evaluate,
    protocol.AUDIT: audit.audit,
}


def report_site_errors(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Turn any failure into an error reply that names the site's problem, instead of a
    traceback in a Ray worker's log."""
    try:
        return call_next(message, context)
    except Exception as error:  # noqa: BLE001 - every failure must reach the server
        reason = f"{type(error).__name__}: {error}"
        return Message(Error(code=getattr(error, "code", SITE_ERROR_CODE), reason=reason), reply_to=message)


def build_client_app(task: Task, sites: list[SiteSpec], seed: int, num_threads: int, dp: DPConfig | None = None,
                     planned_steps: dict[str, int] | None = None, faults: FaultConfig | None = None,
                     train_mods: list[Mod] | None = None) -> ClientApp:
    """Make the ClientApp for a federation.

    The arguments are those of :class:`~sites.client.runtime.SiteRuntime`; they travel with the
    app to every site's process, which makes a site's data once, on the site's first message.

    Parameters
    ----------
    task, sites, seed, num_threads, dp, planned_steps, faults
        As :class:`~sites.client.runtime.SiteRuntime`.
    train_mods : list of Mod, optional
        Flower mods around the ``train`` handler that the strategy needs (the client-side
        clipping of Flower's client-side differential-privacy wrappers).
    """
    runtime = SiteRuntime(task, tuple(sites), seed, num_threads, dp, dict(planned_steps or {}),
                          faults or FaultConfig())
    app = ClientApp(mods=[report_site_errors])
    for kind, handler in HANDLERS.items():
        mods = train_mods if kind is protocol.TRAIN else None
        kind.register(app, mods=mods)(functools.partial(handler, runtime))
    return app
