"""A user's own strategy, defined outside the packages, to test the plug-in path.

It trains like FedAvg but never moves the global model, so every row of R is the same.
"""

from flwr.serverapp.strategy import FedAvg


class FrozenFedAvg(FedAvg):
    """FedAvg whose aggregation keeps the incoming global model.

    Parameters
    ----------
    label : str
        Any argument of the user's own, to show that config keys reach the constructor.
    **kwargs
        Passed to FedAvg.
    """

    def __init__(self, label: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.label = label

    def aggregate_train(self, server_round, replies):
        _, metrics = super().aggregate_train(server_round, replies)
        return None, metrics
