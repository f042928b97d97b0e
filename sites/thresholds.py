"""Choosing a decision threshold from scores, or from histograms of scores (counts only)."""

import numpy as np

# Bins of equal width on [0, 1] for histogram thresholds (see :func:`score_bins`).
THRESHOLD_BINS = 100


def youden_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold on ``scores`` that maximises Youden's J = TPR - FPR against ``labels``.

    Predictions are ``scores > threshold``; the threshold lies halfway between the chosen
    score and the next lower one, so ties are never split. Ties in J go to the higher threshold.
    """
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels).astype(bool)
    candidates, inverse = np.unique(scores, return_inverse=True)
    positives = np.bincount(inverse[labels], minlength=len(candidates))
    negatives = np.bincount(inverse[~labels], minlength=len(candidates))
    return _youden(candidates, positives, negatives)


def histogram_youden_threshold(positives: np.ndarray, negatives: np.ndarray) -> float:
    """:func:`youden_threshold` of scores given only as counts per bin of :func:`score_bins`.

    Each count stands for that many scores at its bin's centre, so on scores that lie on the
    centres the threshold equals :func:`youden_threshold` of the scores themselves; compare
    it with :func:`binned_scores`. Summed histograms of several sites give the threshold of
    their pooled scores.

    Parameters
    ----------
    positives, negatives : array of shape (bins,)
        Counts of label 1 and label 0 scores per bin.
    """
    positives, negatives = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    occupied = (positives + negatives) > 0
    return _youden(bin_centres(len(positives))[occupied], positives[occupied], negatives[occupied])


def _youden(candidates: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> float:
    """The Youden threshold over ascending distinct ``candidates`` with per-candidate label counts."""
    if not positives.sum() or not negatives.sum():
        raise ValueError("Youden's J needs both labels among the scores")
    # Descending: TPR and FPR of predicting positive at >= each candidate.
    candidates, positives, negatives = candidates[::-1], positives[::-1], negatives[::-1]
    j = np.cumsum(positives) / positives.sum() - np.cumsum(negatives) / negatives.sum()
    best = int(np.flatnonzero(j >= j.max() - 1e-12)[0])  # equal J up to rounding: keep the higher threshold
    below = candidates[best + 1] if best + 1 < len(candidates) else candidates[best] - 1.0
    return float((candidates[best] + below) / 2)


def bin_centres(bins: int = THRESHOLD_BINS) -> np.ndarray:
    """Centres of ``bins`` equal bins of [0, 1]."""
    return (np.arange(bins) + 0.5) / bins


def score_bins(scores: np.ndarray, bins: int = THRESHOLD_BINS) -> np.ndarray:
    """Index of each score's bin among ``bins`` equal bins of [0, 1] (1 falls in the last)."""
    return np.clip((np.asarray(scores, dtype=float) * bins).astype(int), 0, bins - 1)


def binned_scores(scores: np.ndarray, bins: int = THRESHOLD_BINS) -> np.ndarray:
    """Each score replaced by its bin's centre: what a histogram threshold is compared with."""
    return bin_centres(bins)[score_bins(scores, bins)]
