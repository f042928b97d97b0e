"""A user's own unlearning method, defined outside the packages, to test the plug-in path."""

from flwr.app import ArrayRecord

from server.unlearning import UnlearningContext, UnlearningMethod


class HalfwayBack(UnlearningMethod):
    """Move the model back towards the checkpoint before the withdrawn site arrived (no training).

    Parameters
    ----------
    share : float
        How far back, in [0, 1]: 1 is that checkpoint, 0 keeps the model.
    """

    name = "halfway_back"

    def __init__(self, share: float) -> None:
        self.share = share

    def unlearn(self, withdrawal, arrays: ArrayRecord, context: UnlearningContext) -> ArrayRecord:
        back = context.checkpoint_before(context.first_stage(withdrawal)).to_torch_state_dict()
        return ArrayRecord({key: value + self.share * (back[key] - value) if value.is_floating_point() else value
                            for key, value in arrays.to_torch_state_dict().items()})
