"""Flower's FedAvg arguments as a config model: the base of our strategies' argument models, as
FedAvg is the base of our strategies."""

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from flwr.serverapp.strategy import FedAvg
from pydantic import Field, NonNegativeInt

from sites.config import ConfigModel

# Flower's own defaults, read from FedAvg, so that a key left out means what Flower documents.
_FLOWER = {name: parameter.default for name, parameter in inspect.signature(FedAvg).parameters.items()}
_Share = Annotated[float, Field(ge=0, le=1)]
_Aggregation = Callable[..., Any] | None


class FedAvgArguments(ConfigModel):
    """The arguments of Flower's :class:`~flwr.serverapp.strategy.FedAvg`, with its defaults.

    Parameters
    ----------
    fraction_train, fraction_evaluate : float
        Share of the connected nodes sampled for a training / evaluation round, in [0, 1].
    min_train_nodes, min_evaluate_nodes : int
        Fewest nodes sampled for a training / evaluation round.
    min_available_nodes : int
        Nodes a round waits for before sampling.
    weighted_by_key : str
        The reply metric the aggregation weighs by.
    arrayrecord_key, configrecord_key : str
        The records the model and the config travel in.
    train_metrics_aggr_fn, evaluate_metrics_aggr_fn : callable or None
        Aggregate the replies' metrics (``None``: Flower's weighted mean).
    """

    fraction_train: _Share = _FLOWER["fraction_train"]
    fraction_evaluate: _Share = _FLOWER["fraction_evaluate"]
    min_train_nodes: NonNegativeInt = _FLOWER["min_train_nodes"]
    min_evaluate_nodes: NonNegativeInt = _FLOWER["min_evaluate_nodes"]
    min_available_nodes: NonNegativeInt = _FLOWER["min_available_nodes"]
    weighted_by_key: str = _FLOWER["weighted_by_key"]
    arrayrecord_key: str = _FLOWER["arrayrecord_key"]
    configrecord_key: str = _FLOWER["configrecord_key"]
    train_metrics_aggr_fn: _Aggregation = _FLOWER["train_metrics_aggr_fn"]
    evaluate_metrics_aggr_fn: _Aggregation = _FLOWER["evaluate_metrics_aggr_fn"]
