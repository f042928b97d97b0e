"""How the federation unlearns a withdrawing site (DESIGN.md §1.4): the ``unlearning`` config
and the methods, each returning the global model without the site.

- ``none``: keep the model as it is (the do-nothing baseline);
- ``retrain``: train the timeline again from the initial model without the site (the oracle);
- ``rewind``: go back to the checkpoint saved before the site arrived and train the stages
  since then again without it;
- ``ga``, ``graddiff``, ``kl``, ``npo``: rounds of the site objectives of
  :mod:`sites.unlearning`, the forget part at the withdrawing site, the retain part (if the
  method has one) at the sites that remain; the server adds the forget update and the
  example-weighted mean of the retain updates;
- ``federaser``: FedEraser (Liu et al., 2021): from the same checkpoint, every stored round
  since the site arrived is replayed as a short calibration round of the remaining sites of that
  round; each array moves by the norm of the remaining sites' *stored* update in the direction
  of their *calibration* update. Rounds in which only withdrawn sites trained are skipped.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, MessageType

from sites.errors import ConfigError
from sites.unlearning import FORGET_METHODS, RETAIN_METHODS

from .messages import to_every_node
from .scenario import Scenario, Stage, Withdrawal
from .site_grid import SiteGrid
from .update_store import UpdateStore, reply_update

METHODS = ("none", "retrain", "rewind", *FORGET_METHODS, "federaser")

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class UnlearningConfig:
    """The ``unlearning`` config group.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    rounds : int
        Site methods: unlearning rounds.
    local_steps : int
        Site methods: optimizer steps each site takes per round.
    lr : float
        Site methods: Adam learning rate.
    beta : float
        ``npo``: the inverse temperature of the loss.
    calibration_share : float
        ``federaser``: a calibration round takes this share of the original round's local steps.
    """

    method: str = "none"
    rounds: int = 4
    local_steps: int = 5
    lr: float = 1e-4
    beta: float = 1.0
    calibration_share: float = 0.5

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "UnlearningConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(config) - known
        if unknown:
            raise ConfigError("unlearning", f"unknown keys {sorted(unknown)} (known: {sorted(known)})")
        unlearning = cls(**config)
        if unlearning.method not in METHODS:
            raise ConfigError("unlearning.method", f"must be one of {list(METHODS)} (got {unlearning.method!r})")
        for key in ("rounds", "local_steps"):
            value = getattr(unlearning, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"unlearning.{key}", f"must be an integer >= 1 (got {value!r})")
        for key in ("lr", "beta"):
            if not getattr(unlearning, key) > 0:
                raise ConfigError(f"unlearning.{key}", f"must be > 0 (got {getattr(unlearning, key)!r})")
        if not 0 < unlearning.calibration_share <= 1:
            raise ConfigError("unlearning.calibration_share", f"must be in (0, 1] (got {unlearning.calibration_share!r})")
        return unlearning


def _state(arrays: ArrayRecord) -> StateDict:
    return arrays.to_torch_state_dict()


def mean_update(updates: Iterable[tuple[StateDict, int]]) -> StateDict:
    """Example-weighted mean of updates."""
    updates = list(updates)
    total = sum(n for _, n in updates)
    return {key: sum(update[key] * (n / total) for update, n in updates) for key in updates[0][0]}


def calibrated_step(stored: StateDict, calibration: StateDict) -> StateDict:
    """FedEraser's update: per array, the stored update's norm along the calibration update's
    direction (an array whose calibration update is 0 stays put)."""
    return {key: stored[key].norm() * value / value.norm() if value.norm() > 0 else value
            for key, value in calibration.items()}


def _moved(state: StateDict, *updates: StateDict) -> ArrayRecord:
    """``state`` plus every update (integer buffers, which updates leave out, unchanged)."""
    return ArrayRecord({key: value + sum(update[key] for update in updates) if key in updates[0] else value
                        for key, value in state.items()})


class Unlearner:
    """Applies :class:`UnlearningConfig` to one withdrawal.

    Parameters
    ----------
    config : UnlearningConfig
        The method and its settings.
    scenario : Scenario
        The timeline (stages, arrivals, which sites have withdrawn).
    view : callable
        ``view(sites)``: a :class:`SiteGrid` showing those sites.
    train_stage : callable
        ``train_stage(view, stage, arrays)``: the timeline's stage training, returning the new
        global arrays first.
    initial : ArrayRecord
        The run's initial global model.
    checkpoints : Path
        Holds ``stage_<t>.pt``, the global model after stage t.
    updates : UpdateStore or None
        The stored training updates (``federaser`` only).
    phase_steps : callable
        ``phase_steps(phase)``: local steps of an original training round in that phase.
    timeout : float
        Seconds to wait for each exchange.
    """

    def __init__(self, config: UnlearningConfig, scenario: Scenario, view: Callable[[list[str]], SiteGrid],
                 train_stage: Callable[[SiteGrid, Stage, ArrayRecord], tuple[ArrayRecord, Any]],
                 initial: ArrayRecord, checkpoints: Path, updates: UpdateStore | None,
                 phase_steps: Callable[[str], int], timeout: float) -> None:
        self.config, self.scenario, self.view = config, scenario, view
        self.train_stage, self.initial, self.checkpoints = train_stage, initial, checkpoints
        self.updates, self.phase_steps, self.timeout = updates, phase_steps, timeout

    def retrain(self, withdrawal: Withdrawal) -> ArrayRecord:
        """The oracle: every stage up to the withdrawal again, from the initial model, without
        the sites withdrawn by then."""
        return self._replay(withdrawal, 1, self.initial)

    def unlearn(self, withdrawal: Withdrawal, arrays: ArrayRecord) -> ArrayRecord:
        """The configured method applied to the global model ``arrays``."""
        method = self.config.method
        if method == "none":
            return arrays
        if method == "retrain":
            return self.retrain(withdrawal)
        if method == "rewind":
            return self._replay(withdrawal, self._arrival(withdrawal), self._before_arrival(withdrawal))
        if method == "federaser":
            return self._federaser(withdrawal)
        return self._site_rounds(withdrawal, arrays)

    def _arrival(self, withdrawal: Withdrawal) -> int:
        return next(site.arrival for site in self.scenario.sites if site.id == withdrawal.site)

    def _before_arrival(self, withdrawal: Withdrawal) -> ArrayRecord:
        stage = self._arrival(withdrawal) - 1
        if stage == 0:
            return self.initial
        return ArrayRecord(torch.load(self.checkpoints / f"stage_{stage}.pt"))

    def _gone(self, withdrawal: Withdrawal) -> set[str]:
        return set(self.scenario.withdrawn_by(withdrawal.stage))

    def _replay(self, withdrawal: Withdrawal, first_stage: int, arrays: ArrayRecord) -> ArrayRecord:
        gone = self._gone(withdrawal)
        for stage in self.scenario.stages[first_stage - 1:withdrawal.stage]:
            remaining = [site for site in stage.sites if site not in gone]
            if remaining:
                arrays, *_ = self.train_stage(self.view(remaining), replace(stage, sites=tuple(remaining)), arrays)
        return arrays

    def _updates(self, view: SiteGrid, arrays: ArrayRecord, message_type: str, config: dict,
                 **extra: ArrayRecord) -> list[tuple[StateDict, int]]:
        """Send ``arrays`` to every site of the view; return each reply's update and example count."""
        replies = view.send_and_receive(to_every_node(view, message_type, config, arrays=arrays, **extra),
                                        timeout=self.timeout)
        start = _state(arrays)
        return [reply_update(reply, start) for reply in replies]

    def _site_rounds(self, withdrawal: Withdrawal, arrays: ArrayRecord) -> ArrayRecord:
        config = self.config
        retain = [s for s in self.scenario.seen_by(withdrawal.stage) if s not in self._gone(withdrawal)]
        site_config = {"method": config.method, "local-steps": config.local_steps, "lr": config.lr,
                       "beta": config.beta}
        message_type = f"{MessageType.TRAIN}.unlearn"
        reference = arrays
        for _ in range(config.rounds):
            (forget, _), = self._updates(self.view([withdrawal.site]), arrays, message_type,
                                         {**site_config, "role": "forget"}, reference=reference)
            moves = [forget]
            if config.method in RETAIN_METHODS and retain:
                moves.append(mean_update(self._updates(self.view(retain), arrays, message_type,
                                                        {**site_config, "role": "retain"}, reference=reference)))
            arrays = _moved(_state(arrays), *moves)
        return arrays

    def _federaser(self, withdrawal: Withdrawal) -> ArrayRecord:
        if self.updates is None:
            raise ValueError("federaser needs the stored training updates, and none were recorded")
        gone, arrival = self._gone(withdrawal), self._arrival(withdrawal)
        arrays = self._before_arrival(withdrawal)
        for round_config, stored in self.updates.rounds():
            if not arrival <= int(round_config["stage"]) <= withdrawal.stage:
                continue
            kept = {site: update for site, update in stored.items() if site not in gone}
            if not kept:
                continue
            steps = max(1, round(self.phase_steps(str(round_config.get("phase", "train"))) *
                                 self.config.calibration_share))
            calibration = mean_update(self._updates(self.view(list(kept)), arrays, MessageType.TRAIN,
                                                     {**round_config, "local-steps": steps}))
            arrays = _moved(_state(arrays), calibrated_step(mean_update(kept.values()), calibration))
        return arrays
