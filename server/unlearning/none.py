"""``unlearning=none``: no unlearning, the do-nothing baseline of the withdrawal table (s_F = 0)."""

from flwr.app import ArrayRecord

from ..scenario import Withdrawal
from .base import UnlearningContext, UnlearningMethod


class NoUnlearning(UnlearningMethod):
    """Keep the model as it is: a withdrawing site just leaves, the model keeps what it learned from it."""

    name = "none"

    def unlearn(self, withdrawal: Withdrawal, arrays: ArrayRecord, context: UnlearningContext) -> ArrayRecord:
        return arrays
