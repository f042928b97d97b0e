"""``unlearning=federaser``: FedEraser (Liu et al., 2021).

From the checkpoint before the earliest arrival among the sites gone, every stored round since
then is replayed as a short calibration round of that round's remaining sites; each site's
update is, array by array, the norm of its *stored* update in the direction of its
*calibration* update, and the server takes their example-weighted mean. Rounds in which only
withdrawn sites trained are skipped. The run stores every training update for it (in the run
directory under ``updates/``).
"""

from collections import Counter
from dataclasses import replace
from typing import Annotated

from flwr.app import ArrayRecord
from pydantic import Field

from sites.config import ConfigModel
from sites.protocol import TRAIN, TrainConfig
from sites.tasks import Task
from strategies.aggregation import weighted_mean

from ..scenario import Scenario, Withdrawal, stage_steps
from .base import StateDict, UnlearningContext, UnlearningMethod, moved


def calibrated_step(stored: StateDict, calibration: StateDict) -> StateDict:
    """FedEraser's calibrated update of one site: per array, the norm of its stored update along
    the direction of its calibration update (an array whose calibration update is 0 stays put)."""
    return {key: stored[key].norm() * value / value.norm() if value.norm() > 0 else value
            for key, value in calibration.items()}


class FedEraserArguments(ConfigModel):
    """:class:`FedEraser`'s arguments.

    Parameters
    ----------
    calibration_share : float
        A calibration round takes this share, in (0, 1], of the original round's local steps.
    """

    calibration_share: Annotated[float, Field(gt=0, le=1)] = 0.5


class FedEraser(UnlearningMethod):
    """Calibrated replay of the stored rounds. Its arguments: :class:`FedEraserArguments`."""

    name = "federaser"
    needs_updates = True
    arguments = FedEraserArguments

    def __init__(self, calibration_share: float) -> None:
        self.calibration_share = calibration_share

    def calibration_steps(self, task: Task, phase: str) -> int:
        """Local steps of a calibration round of ``phase``: its share of the phase's steps, at least 1."""
        return max(1, round(task.phase_steps(phase) * self.calibration_share))

    def planned_steps(self, withdrawal: Withdrawal, scenario: Scenario, task: Task) -> Counter[str]:
        # Every round of the stages since the first arrival, for every site that trained it and remains.
        per_round = sum(self.calibration_steps(task, phase.name) for phase in task.phases)
        return stage_steps(scenario.replay_stages(withdrawal, scenario.first_arrival(withdrawal)), per_round)

    def unlearn(self, withdrawal: Withdrawal, arrays: ArrayRecord, context: UnlearningContext) -> ArrayRecord:
        gone, first = set(context.scenario.gone_at(withdrawal)), context.first_stage(withdrawal)
        arrays = context.checkpoint_before(first)
        for stored_config, stored in context.updates.rounds():
            round_config = TrainConfig.from_record(stored_config)
            if not first <= round_config.stage <= withdrawal.stage:
                continue
            kept = {site: update for site, update in stored.items() if site not in gone}
            if not kept:
                continue
            steps = self.calibration_steps(context.task, round_config.phase)
            calibration = context.updates_of(list(kept), arrays, TRAIN,
                                             replace(round_config, local_steps=steps))  # replies in the order of kept
            calibrated = [(calibrated_step(old, new), n) for (old, _), (new, n) in zip(kept.values(), calibration)]
            arrays = moved(arrays, weighted_mean(calibrated))
        return arrays
