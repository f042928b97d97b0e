"""Identifying markers burned into some patients' images (docs/design.md#data).

A marker is a tag in the image's corner: a random pattern of saturated pixels, unique to the
patient, which is what a burned-in name or record number looks like to a network. A model can
memorise it, and a memorised patient is easier to re-identify by membership inference.
"""

import numpy as np
import torch

# Saturated, in units of the z-scored images: brighter than any tissue.
MARKER_INTENSITY = 4.0


def stamp_markers(images: torch.Tensor, rate: float, rng: np.random.Generator) -> torch.Tensor:
    """Burn a marker into a ``rate`` share of ``images``, in place.

    Parameters
    ----------
    images : torch.Tensor
        ``(N, C, ..., H, W)``: the tag covers the first ``max(3, W // 8)`` rows and columns of
        every channel and slice; its corner pixel is always set, so every tag is visible.
    rate : float
        Probability that a patient carries a marker.
    rng : np.random.Generator
        Draws who is marked and each tag's pattern.

    Returns
    -------
    torch.Tensor
        ``(N,)`` bool: which images carry a marker.
    """
    n, side = len(images), max(3, images.shape[-1] // 8)
    marked = torch.from_numpy(rng.random(n) < rate)
    patterns = torch.from_numpy(rng.random((n, side, side)) < 0.5)
    patterns[:, 0, 0] = True
    for i in torch.nonzero(marked).flatten().tolist():
        corner = images[i, ..., :side, :side]
        corner[...] = torch.where(patterns[i], torch.tensor(MARKER_INTENSITY, dtype=images.dtype), corner)
    return marked
