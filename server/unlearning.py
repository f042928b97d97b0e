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
  since then is replayed as a short calibration round of that round's remaining sites; each
  site's update is, array by array, the norm of its *stored* update in the direction of its
  *calibration* update, and the server takes their example-weighted mean. Rounds in which only
  withdrawn sites trained are skipped.

"The same checkpoint" is the one saved before the earliest arrival among the sites gone at this
withdrawal (this site and those withdrawn before it), so it holds none of them.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord

from sites.errors import ConfigError, refuse_unknown_keys
from sites.protocol import TRAIN, UNLEARN, MessageKind, Payload, RecordName, TrainConfig, UnlearnConfig, request
from sites.unlearning import FORGET_METHODS, RETAIN_METHODS
from strategies.aggregation import weighted_mean

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
        refuse_unknown_keys("unlearning", config, (f.name for f in fields(cls)))
        unlearning = cls(**config)
        if unlearning.method not in METHODS:
            raise ConfigError("unlearning.method", f"must be one of {list(METHODS)} (got {unlearning.method!r})")
        for key in ("rounds", "local_steps"):
            value = getattr(unlearning, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"unlearning.{key}", f"must be an integer >= 1 (got {value!r})")
        for key in ("lr", "beta", "calibration_share"):
            value = getattr(unlearning, key)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"unlearning.{key}", f"must be a number > 0 (got {value!r})")
        if not unlearning.calibration_share <= 1:
            raise ConfigError("unlearning.calibration_share", f"must be in (0, 1] (got {unlearning.calibration_share!r})")
        return unlearning


def _state(arrays: ArrayRecord) -> StateDict:
    return arrays.to_torch_state_dict()


def calibrated_step(stored: StateDict, calibration: StateDict) -> StateDict:
    """FedEraser's calibrated update of one site: per array, the norm of its stored update along
    the direction of its calibration update (an array whose calibration update is 0 stays put)."""
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
        the sites gone at this withdrawal."""
        return self._replay(withdrawal, 1, self.initial)

    def unlearn(self, withdrawal: Withdrawal, arrays: ArrayRecord) -> ArrayRecord:
        """The configured method applied to the global model ``arrays``."""
        method = self.config.method
        if method == "none":
            return arrays
        if method == "retrain":
            return self.retrain(withdrawal)
        if method == "rewind":
            first = self._first_stage(withdrawal)
            return self._replay(withdrawal, first, self._checkpoint_before(first))
        if method == "federaser":
            return self._federaser(withdrawal)
        return self._site_rounds(withdrawal, arrays)

    def _first_stage(self, withdrawal: Withdrawal) -> int:
        """The earliest arrival among the sites gone at ``withdrawal``: the checkpoint before it
        holds none of them (a site withdrawn earlier may have arrived before this one)."""
        return min(self.scenario.arrival_of(site) for site in self.scenario.gone_at(withdrawal))

    def _checkpoint_before(self, stage: int) -> ArrayRecord:
        if stage == 1:
            return self.initial
        return ArrayRecord(torch.load(self.checkpoints / f"stage_{stage - 1}.pt"))

    def _replay(self, withdrawal: Withdrawal, first_stage: int, arrays: ArrayRecord) -> ArrayRecord:
        for stage in self.scenario.replay_stages(withdrawal, first_stage):
            arrays, *_ = self.train_stage(self.view(list(stage.sites)), stage, arrays)
        return arrays

    def _updates(self, view: SiteGrid, arrays: ArrayRecord, kind: MessageKind, config: Payload,
                 extra: Mapping[str, ArrayRecord] | None = None) -> list[tuple[StateDict, int]]:
        """Send ``arrays`` (and the ``extra`` array records) to every site of the view; return each
        reply's update and example count."""
        replies = view.send_and_receive(kind.messages(request(config, model=arrays, arrays=extra), view.get_node_ids()),
                                        timeout=self.timeout)
        start = _state(arrays)
        return [reply_update(reply, start) for reply in replies]

    def _site_rounds(self, withdrawal: Withdrawal, arrays: ArrayRecord) -> ArrayRecord:
        config = self.config
        gone = self.scenario.gone_at(withdrawal)
        retain = [s for s in self.scenario.seen_by(withdrawal.stage) if s not in gone]
        forget_config = UnlearnConfig(config.method, "forget", config.local_steps, config.lr, config.beta)
        reference = {RecordName.REFERENCE: arrays}
        for _ in range(config.rounds):
            (forget, _), = self._updates(self.view([withdrawal.site]), arrays, UNLEARN, forget_config, reference)
            moves = [forget]
            if config.method in RETAIN_METHODS and retain:
                moves.append(weighted_mean(self._updates(self.view(retain), arrays, UNLEARN,
                                                        replace(forget_config, role="retain"), reference)))
            arrays = _moved(_state(arrays), *moves)
        return arrays

    def _federaser(self, withdrawal: Withdrawal) -> ArrayRecord:
        gone, first = set(self.scenario.gone_at(withdrawal)), self._first_stage(withdrawal)
        arrays = self._checkpoint_before(first)
        for stored_config, stored in self.updates.rounds():
            round_config = TrainConfig.from_record(stored_config)
            if not first <= round_config.stage <= withdrawal.stage:
                continue
            kept = {site: update for site, update in stored.items() if site not in gone}
            if not kept:
                continue
            steps = max(1, round(self.phase_steps(round_config.phase) * self.config.calibration_share))
            calibration = self._updates(self.view(list(kept)), arrays, TRAIN,
                                        replace(round_config, local_steps=steps))  # replies in the order of kept
            calibrated = [(calibrated_step(old, new), n) for (old, _), (new, n) in zip(kept.values(), calibration)]
            arrays = _moved(_state(arrays), weighted_mean(calibrated))
        return arrays
