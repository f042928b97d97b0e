"""``unlearning=retrain``: the oracle every other method is scored against (and the cost they
are compared with)."""

from flwr.app import ArrayRecord

from ..scenario import Withdrawal
from .base import UnlearningContext, UnlearningMethod


class Retrain(UnlearningMethod):
    """Train the timeline again from the initial model without the sites gone."""

    name = "retrain"
    is_oracle = True

    def unlearn(self, withdrawal: Withdrawal, arrays: ArrayRecord, context: UnlearningContext) -> ArrayRecord:
        return context.retrain(withdrawal)
