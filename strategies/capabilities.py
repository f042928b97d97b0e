"""What a strategy may do beyond Flower's :class:`~flwr.serverapp.strategy.Strategy`, one small
protocol per capability, like the tasks' (:mod:`sites.tasks.capabilities`).

The protocols are structural: a strategy has a capability when it has the members, whether or
not it names the protocol among its bases. A strategy that wraps another (Flower's
differential-privacy wrappers keep it as ``strategy``) has the capabilities of the strategies it
wraps: :func:`capable` looks through the layers. The run checks them before anything starts
(:mod:`server.capability_checks`).
"""

from collections.abc import Iterator
from typing import Protocol, TypeVar, runtime_checkable

from flwr.app import ArrayRecord
from flwr.serverapp.strategy import Strategy

from sites.tasks import Task

C = TypeVar("C")


@runtime_checkable
class StrategyWrapper(Protocol):
    """Wraps another strategy and delegates to it (Flower's differential-privacy wrappers)."""

    #: The wrapped strategy.
    strategy: Strategy


def unwrapped(strategy: Strategy) -> Iterator[Strategy]:
    """``strategy``, then the strategy it wraps (:class:`StrategyWrapper`), and so on inwards."""
    yield strategy
    while isinstance(strategy, StrategyWrapper) and isinstance(strategy.strategy, Strategy):
        strategy = strategy.strategy
        yield strategy


@runtime_checkable
class ReplayConsumer(Protocol):
    """Trains the sites on replay of earlier sites: the server hands it samples before each stage
    (``replay=smd|real`` is refused with a strategy that is not one)."""

    def set_replay(self, replay: ArrayRecord | None) -> None:
        """Replay for the coming stage (:func:`~sites.replay.pack_domains`; ``None``: no earlier site)."""


@runtime_checkable
class SiteObjectiveChanger(Protocol):
    """Makes the sites' loss more than the task's own (replay terms, a penalty): refused with
    ``privacy=dp``, whose per-sample clipping the extra terms escape, and with site withdrawals,
    whose unlearning the strategy's state would undo."""

    #: The terms it adds to the sites' loss, in words (refusals name them).
    site_terms: str


@runtime_checkable
class TaskCapabilityUser(Protocol):
    """Needs task capabilities (:mod:`sites.tasks.capabilities`) beyond the task contract."""

    #: The capabilities the strategy needs of the task.
    task_capabilities: tuple[type, ...]


@runtime_checkable
class TaskAware(Protocol):
    """Needs the run's task on the server (to build and train a model there): given once, when the
    run is prepared (:func:`bind_task`)."""

    def bind_task(self, task: Task) -> None:
        """Keep ``task`` for the run."""


@runtime_checkable
class TrainLossReader(Protocol):
    """Reads each site's training loss from its training reply (Flower's ``QFedAvg``): refused
    with ``privacy.train_metrics=withhold``."""

    #: The metric of the training reply it reads.
    train_loss_key: str


def layers(strategy: Strategy, capability: type[C]) -> Iterator[C]:
    """The layers of ``strategy`` (itself, then the strategies it wraps) that have ``capability``."""
    return (layer for layer in unwrapped(strategy) if isinstance(layer, capability))


def capable(strategy: Strategy, capability: type[C]) -> C | None:
    """The outermost layer of ``strategy`` that has ``capability`` (``None``: no layer has it)."""
    return next(layers(strategy, capability), None)


def bind_task(strategy: Strategy, task: Task) -> None:
    """Give ``task`` to every layer of ``strategy`` that needs it (:class:`TaskAware`)."""
    for layer in layers(strategy, TaskAware):
        layer.bind_task(task)
