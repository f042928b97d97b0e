"""``unlearning=rewind``: go back to the checkpoint saved before the site arrived, then train the
stages since then again without it."""

from flwr.app import ArrayRecord

from ..scenario import Withdrawal
from .base import UnlearningContext, UnlearningMethod


class Rewind(UnlearningMethod):
    """Retrain from the checkpoint before the earliest arrival among the sites gone (it holds
    none of them) instead of from the initial model."""

    name = "rewind"

    def unlearn(self, withdrawal: Withdrawal, arrays: ArrayRecord, context: UnlearningContext) -> ArrayRecord:
        return context.retrain(withdrawal, context.first_stage(withdrawal))
