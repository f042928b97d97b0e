"""The Unlearning Efficiency Score (docs/design.md#ues).

MLLMU-Med scores unlearning with one number over forget, retain and test subsets; its exact
formula was not available, so ours is defined here. With a metric ``P`` where higher means a
better fit (Dice, AUC), ``P_o`` the model before withdrawal, ``P_u`` after unlearning and
``P_r`` the oracle retrained without the site:

- ``s_F = 1 - min(1, |P_u(F) - P_r(F)| / |P_o(F) - P_r(F)|)``: 1 when the forget set is exactly
  as forgotten as by the oracle; forgetting too little and too much both cost;
- ``s_R = min(1, P_u(R) / P_r(R))`` and ``s_T = min(1, P_u(T) / P_r(T))``: what is kept;
- ``UES`` = harmonic mean of the three, in [0, 1] (0 if any part is 0).

``s_F`` is undefined when the oracle barely differs from the original model on the forget set
(``|P_o(F) - P_r(F)| < min_gap``): there is nothing measurable to forget. Then ``s_F`` and
``UES`` are ``None`` and reports say so.
"""

from collections.abc import Mapping

#: Default smallest ``|P_o(F) - P_r(F)|`` for which ``s_F`` is defined, in metric units.
MIN_FORGET_GAP = 0.01

SUBSETS = ("forget", "retain", "test")
#: The scores :func:`unlearning_efficiency` returns, in the order reports print them.
SCORES = ("s_F", "s_R", "s_T", "UES")


def forget_score(before: float, after: float, oracle: float, min_gap: float = MIN_FORGET_GAP) -> float | None:
    """``s_F``; ``None`` when ``|before - oracle| < min_gap``."""
    gap = abs(before - oracle)
    if gap < min_gap:
        return None
    return 1.0 - min(1.0, abs(after - oracle) / gap)


def kept_score(after: float, oracle: float) -> float:
    """``s_R`` or ``s_T``: ``min(1, after / oracle)``, 0 when after <= 0, 1 when the oracle
    itself scores 0 or less (nothing to keep)."""
    if oracle <= 0:
        return 1.0
    return max(0.0, min(1.0, after / oracle))


def harmonic_mean(values: list[float]) -> float:
    if any(v <= 0 for v in values):
        return 0.0
    return len(values) / sum(1.0 / v for v in values)


def unlearning_efficiency(before: Mapping[str, float], after: Mapping[str, float], oracle: Mapping[str, float],
                          min_gap: float = MIN_FORGET_GAP) -> dict[str, float | None]:
    """``s_F``, ``s_R``, ``s_T`` and ``UES`` from the metric of each model on each subset.

    Parameters
    ----------
    before, after, oracle : mapping
        Subset name (``forget``, ``retain``, ``test``) -> metric of ``P_o``, ``P_u``, ``P_r``.
    min_gap : float
        See :data:`MIN_FORGET_GAP`.
    """
    s_f = forget_score(before["forget"], after["forget"], oracle["forget"], min_gap)
    s_r = kept_score(after["retain"], oracle["retain"])
    s_t = kept_score(after["test"], oracle["test"])
    ues = None if s_f is None else harmonic_mean([s_f, s_r, s_t])
    return {"s_F": s_f, "s_R": s_r, "s_T": s_t, "UES": ues}
