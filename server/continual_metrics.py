"""Continual-learning summaries of the result matrix R[t, j] (docs/design.md#metrics).

R[t, j] is the primary metric of site j's test split after stage t (stages 1..T, stored
0-based); ``arrival[j]`` is the stage at which site j first trained (``None`` if held out).
"""

from collections.abc import Sequence

import numpy as np


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def memorizability(R: np.ndarray, arrival: Sequence[int | None], stage: int) -> float | None:
    """Mean over the sites seen by ``stage`` (1-based) of R[stage, j]."""
    return _mean([R[stage - 1, j] for j, a in enumerate(arrival) if a is not None and a <= stage])


def generalizability(R: np.ndarray, arrival: Sequence[int | None], stage: int) -> float | None:
    """Mean over sites not yet seen by ``stage`` (held-out sites included) of R[stage, j]."""
    return _mean([R[stage - 1, j] for j, a in enumerate(arrival) if a is None or a > stage])


def backward_transfer(R: np.ndarray, arrival: Sequence[int | None]) -> float | None:
    """BWT: mean over sites that arrived before the last stage T of R[T, j] - R[arrival_j, j]."""
    T = R.shape[0]
    return _mean([R[T - 1, j] - R[a - 1, j] for j, a in enumerate(arrival) if a is not None and a < T])


def forgetting(R: np.ndarray, arrival: Sequence[int | None]) -> float | None:
    """Mean over sites that arrived before T of the drop from their best R[t, j] (t < T) to R[T, j]."""
    T = R.shape[0]
    return _mean([R[a - 1:T - 1, j].max() - R[T - 1, j] for j, a in enumerate(arrival) if a is not None and a < T])


def summarize(R: np.ndarray, arrival: Sequence[int | None]) -> dict:
    """All summaries: final-stage values and the per-stage curves."""
    T = R.shape[0]
    return {
        "memorizability": memorizability(R, arrival, T),
        "generalizability": generalizability(R, arrival, T),
        "bwt": backward_transfer(R, arrival),
        "forgetting": forgetting(R, arrival),
        "per_stage": [
            {"stage": t, "memorizability": memorizability(R, arrival, t),
             "generalizability": generalizability(R, arrival, t)}
            for t in range(1, T + 1)
        ],
    }
