"""``unlearning=rewind``: go back to the checkpoint saved before the site arrived, then train the
stages since then again without it."""

from collections import Counter

from flwr.app import ArrayRecord

from sites.tasks import Task

from ..scenario import Scenario, Withdrawal, stage_steps
from .base import UnlearningContext, UnlearningMethod


class Rewind(UnlearningMethod):
    """Retrain from the checkpoint before the earliest arrival among the sites gone (it holds
    none of them) instead of from the initial model."""

    name = "rewind"

    def planned_steps(self, withdrawal: Withdrawal, scenario: Scenario, task: Task) -> Counter[str]:
        return stage_steps(scenario.replay_stages(withdrawal, scenario.first_arrival(withdrawal)), task.round_steps)

    def unlearn(self, withdrawal: Withdrawal, arrays: ArrayRecord, context: UnlearningContext) -> ArrayRecord:
        return context.retrain(withdrawal, context.first_stage(withdrawal))
