"""Confidence intervals for membership-inference measurements (docs/design.md#privacy).

A site measures an attack on a few dozen or hundred patients; these intervals say how far the
measurement can be trusted, so that the audit's verdict claims no more than they support:

- :func:`clopper_pearson`: the exact binomial interval of a rate (a TPR: members found of members);
- :func:`delong_auc`: the ROC AUC with DeLong's variance (Mann–Whitney's AUC, ties counted half),
  deterministic and closed-form, computed from midranks (Sun & Xu 2014); :func:`auc_interval`
  keeps it from falling below the variance of an AUC at chance;
- :func:`smallest_resolvable_fpr`: with ``n`` non-members the smallest non-zero false-positive
  rate a threshold can have is ``1 / n``; a lower target FPR cannot be told from 0.
"""

import numpy as np
from scipy import stats

#: The two-sided confidence level of every interval the audit reports.
CONFIDENCE = 0.95


def clopper_pearson(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Clopper–Pearson interval of a binomial rate: ``successes`` of ``trials``, at
    ``confidence`` (two-sided, ``alpha / 2`` on each side); 0 successes give a lower end of 0,
    ``trials`` successes an upper end of 1."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"clopper_pearson: {successes} successes of {trials} trials")
    tail = (1 - confidence) / 2
    low = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(stats.beta.ppf(1 - tail, successes + 1, trials - successes))
    return low, high


def delong_auc(positive: np.ndarray, negative: np.ndarray) -> tuple[float, float]:
    """The ROC AUC of "positive if the score is higher" and DeLong's estimate of its variance.

    Each positive's share of negatives scored below it (ties half) and each negative's share of
    positives scored above it are the structural components ``V10`` and ``V01``; the AUC is
    their mean and its variance ``var(V10) / m + var(V01) / n`` (sample variances, ``m``
    positives, ``n`` negatives, at least 2 of each).
    """
    m, n = len(positive), len(negative)
    if m < 2 or n < 2:
        raise ValueError(f"delong_auc needs 2 scores of each class (got {m} and {n})")
    ranks = stats.rankdata(np.concatenate([positive, negative]))
    v10 = (ranks[:m] - stats.rankdata(positive)) / n
    v01 = 1 - (ranks[m:] - stats.rankdata(negative)) / m
    return float(v10.mean()), float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)


def null_auc_variance(m: int, n: int) -> float:
    """The variance of the AUC of ``m`` positives and ``n`` negatives whose scores do not tell
    them apart (Mann–Whitney's null variance, untied): ``(m + n + 1) / (12 m n)``."""
    return (m + n + 1) / (12 * m * n)


def auc_interval(positive: np.ndarray, negative: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The AUC's normal interval at ``confidence``, clipped to [0, 1], with DeLong's variance but
    never less than :func:`null_auc_variance`: DeLong's estimate is 0 when the scores separate
    perfectly and too small for a handful of patients, which would turn four patients into a
    certainty. The floor is conservative away from 0.5 (at AUC 0.8 with 160 of each, about
    1.3 times DeLong's standard error)."""
    value, variance = delong_auc(positive, negative)
    variance = max(variance, null_auc_variance(len(positive), len(negative)))
    half = float(stats.norm.ppf(1 - (1 - confidence) / 2)) * variance ** 0.5
    return max(0.0, value - half), min(1.0, value + half)


def smallest_resolvable_fpr(n_negatives: int) -> float:
    """The smallest non-zero false-positive rate ``n_negatives`` non-members can show: ``1 / n``."""
    return 1.0 / n_negatives


def resolves(target_fpr: float, n_negatives: int) -> bool:
    """Whether ``n_negatives`` non-members resolve ``target_fpr``: a threshold can reach it with
    at least one false positive (``n * target >= 1``), rather than only with none."""
    return n_negatives * target_fpr >= 1 - 1e-9
