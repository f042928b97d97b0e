"""Refuse, before anything runs, what the run's strategy, replay source and task cannot do
together: the strategy's capabilities (:mod:`strategies.capabilities`) against the replay, DP and
withdrawals asked for, and the task's (:mod:`sites.tasks.capabilities`) against the features
that need them."""

from flwr.serverapp.strategy import Strategy

from sites.errors import ConfigError
from sites.privacy import DPConfig
from sites.tasks import ClassLogits, LabelCorruption, PhaseStatistics, ReferenceData, Task
from sites.tasks.capabilities import require
from strategies.capabilities import (
    ReplayConsumer,
    SiteObjectiveChanger,
    TaskCapabilityUser,
    TrainLossReader,
    capable,
    layers,
)

from .replay import REPLAY_SOURCES, NoReplay
from .replay_config import ReplayConfig
from .scenario import Scenario


def check_strategy_objective(strategy: Strategy, replay: ReplayConfig, task: Task, dp: bool, withdrawals: bool) -> None:
    """Refuse what replay and strategies that change the sites' objective (replay, EWC) cannot
    do: a replay source the strategy would not use, DP (their terms escape per-sample
    clipping), withdrawals (the source and the strategy's state keep the withdrawn site); and
    task capabilities the source or the strategy needs that the task lacks."""
    name = type(strategy).__name__
    source = REPLAY_SOURCES.get(replay.source, "replay.source")
    replays = source is not NoReplay
    if replays and capable(strategy, ReplayConsumer) is None:
        raise ConfigError("replay", f"{name} does not train on replay; use strategy=pga, smd_replay or "
                          "replay_buffer, or replay=none")
    require(task, [(capability, f"replay={replay.source}") for capability in source.task_capabilities], "replay")
    require(task, [(capability, type(layer).__name__) for layer in layers(strategy, TaskCapabilityUser)
                   for capability in layer.task_capabilities], "strategy")
    changer = capable(strategy, SiteObjectiveChanger)
    if changer is not None and dp:
        raise ConfigError("privacy", f"{type(changer).__name__} cannot run with privacy=dp: its {changer.site_terms} "
                          "terms would escape DP-SGD's per-sample clipping")
    if withdrawals and (replays or changer is not None):
        raise ConfigError("strategy", f"site withdrawals cannot run with {name} (replay={replay.source}): "
                          "its replay and state would keep the withdrawn site")


def check_train_metrics(strategy: Strategy, task: Task, dp: DPConfig | None) -> None:
    """Refuse ``privacy.train_metrics`` a run cannot honour: ``withhold`` with a strategy that
    reads the training loss (:class:`~strategies.capabilities.TrainLossReader`, e.g. Flower's
    QFedAvg), ``noise`` with a task without per-sample losses."""
    if dp is None:
        return
    reader = capable(strategy, TrainLossReader)
    if dp.train_metrics == "withhold" and reader is not None:
        raise ConfigError("privacy.train_metrics", f"withhold: {type(reader).__name__} reads each site's "
                          f"{reader.train_loss_key!r}; use noise or release")
    if dp.train_metrics == "noise":
        require(task, [(ClassLogits, "privacy.train_metrics=noise")], "privacy.train_metrics")


def check_task_capabilities(task: Task, scenario: Scenario) -> None:
    """Refuse before training what the scenario asks of a task that lacks the capability
    (:mod:`sites.tasks.capabilities`): a withdrawal needs per-sample losses (unlearning
    objectives, membership inference), a site with wrong labels (``reason=incorrectness``) the
    label-corruption rule, the privacy audit per-sample losses and, with reference models,
    fresh data, and a phase with statistics the task's counts."""
    needs = [(ClassLogits, "a site withdrawal")] if scenario.withdrawals else []
    needs += [(LabelCorruption, f"site {site.id}'s corrupt_labels") for site in scenario.sites if site.corrupt_labels]
    if scenario.audit is not None:
        needs.append((ClassLogits, "the privacy audit"))
        if scenario.audit.reference_models:
            needs.append((ReferenceData, "the audit's reference models (scenario.audit.reference_models)"))
    needs += [(PhaseStatistics, f"phase {phase.name} (statistics=True)") for phase in task.phases if phase.statistics]
    require(task, needs, "task")
