"""``unlearning=retrain``: the oracle every other method is scored against (and the cost they
are compared with)."""

from collections import Counter

from flwr.app import ArrayRecord

from sites.tasks import Task

from ..scenario import Scenario, Withdrawal, stage_steps
from .base import UnlearningContext, UnlearningMethod


class Retrain(UnlearningMethod):
    """Train the timeline again from the initial model without the sites gone."""

    name = "retrain"
    is_oracle = True

    def planned_steps(self, withdrawal: Withdrawal, scenario: Scenario, task: Task) -> Counter[str]:
        return stage_steps(scenario.replay_stages(withdrawal), task.round_steps)

    def unlearn(self, withdrawal: Withdrawal, arrays: ArrayRecord, context: UnlearningContext) -> ArrayRecord:
        return context.retrain(withdrawal)
