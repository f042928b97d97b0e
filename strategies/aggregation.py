"""Small aggregation helpers shared by strategies and the server."""

from collections.abc import Iterable

import torch

StateDict = dict[str, torch.Tensor]


def weighted_mean(states: Iterable[tuple[StateDict, float]]) -> StateDict:
    """The weighted mean, key by key, of ``(state, weight)`` pairs (FedAvg's rule, with the
    number of examples as the weight)."""
    states = list(states)
    total = sum(weight for _, weight in states)
    return {key: sum(state[key] * (weight / total) for state, weight in states) for key in states[0][0]}
