"""Choosing a decision threshold from scores."""

import numpy as np


def youden_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold on ``scores`` that maximises Youden's J = TPR - FPR against ``labels``.

    Predictions are ``scores > threshold``; the threshold lies halfway between the chosen
    score and the next lower one, so ties are never split. Ties in J go to the higher threshold.
    """
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("Youden's J needs both labels among the scores")
    candidates = np.unique(scores)[::-1]  # descending
    tpr = np.array([(scores[labels] >= c).mean() for c in candidates])
    fpr = np.array([(scores[~labels] >= c).mean() for c in candidates])
    j = tpr - fpr
    best = int(np.flatnonzero(j >= j.max() - 1e-12)[0])  # equal J up to rounding: keep the higher threshold
    below = candidates[best + 1] if best + 1 < len(candidates) else candidates[best] - 1.0
    return float((candidates[best] + below) / 2)
