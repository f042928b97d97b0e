"""Bias-group metrics: AUC on bias-aligned and bias-conflicting samples, and their federated
form from per-site score histograms (counts only)."""

from collections.abc import Iterable, Mapping

import numpy as np
import torch
from monai.metrics import compute_roc_auc

HISTOGRAM_BINS = 100


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """MONAI's ROC AUC; ``None`` unless both classes are present."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return None
    return float(compute_roc_auc(torch.as_tensor(scores, dtype=torch.float32), torch.as_tensor(labels)))


def group_aucs(scores: np.ndarray, labels: np.ndarray, bias: np.ndarray) -> dict[str, float]:
    """``aligned_auc`` (label == bias), ``conflicting_auc`` (label != bias) and their mean,
    ``balanced_auc``, for the subsets where both classes are present. Unknown bias (< 0) is skipped."""
    known = bias >= 0
    aligned, conflicting = known & (labels == bias), known & (labels != bias)
    out = {}
    for name, subset in (("aligned_auc", aligned), ("conflicting_auc", conflicting)):
        value = auc(scores[subset], labels[subset])
        if value is not None:
            out[name] = value
    if len(out) == 2:
        out["balanced_auc"] = (out["aligned_auc"] + out["conflicting_auc"]) / 2
    return out


def score_histograms(scores: np.ndarray, labels: np.ndarray, bias: np.ndarray) -> dict[str, list[float]]:
    """Counts of scores in ``HISTOGRAM_BINS`` equal bins of [0, 1], per (label, bias) group."""
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    return {f"hist-y{y}-b{b}": np.histogram(scores[(labels == y) & (bias == b)], bins=edges)[0].astype(float).tolist()
            for y in (0, 1) for b in (0, 1)}


def pooled_group_aucs(site_histograms: Iterable[Mapping[str, list[float]]]) -> dict[str, float]:
    """Group AUCs of the whole federation from the sites' summed histograms.

    Each bin's count is expanded into that many scores at the bin's centre, so the AUC is
    exact up to ties inside a bin (bins are 1/100 wide).
    """
    totals: dict[str, np.ndarray] = {}
    for histograms in site_histograms:
        for key, counts in histograms.items():
            if key.startswith("hist-"):
                totals[key] = totals.get(key, 0) + np.asarray(counts)
    centres = (np.arange(HISTOGRAM_BINS) + 0.5) / HISTOGRAM_BINS
    scores, labels, bias = [], [], []
    for y in (0, 1):
        for b in (0, 1):
            counts = totals.get(f"hist-y{y}-b{b}", np.zeros(HISTOGRAM_BINS)).astype(int)
            scores.append(np.repeat(centres, counts))
            labels.append(np.full(counts.sum(), y))
            bias.append(np.full(counts.sum(), b))
    return group_aucs(np.concatenate(scores), np.concatenate(labels), np.concatenate(bias))
