"""Chest-radiograph-like 2D images: lungs, heart, ribs, and (label 1) a lung opacity.

The opacity is a soft blob inside one lung, its intensity above the lung set by the scanner
signature's ``contrast``: a small, local finding. How a source renders the whole image (noise,
sharpness, coil-like shading) is global and far easier to pick up, which is what makes a
source-correlated label a shortcut (docs/design.md#pbbl, docs/design.md#data).
"""

import numpy as np


def _inside(x, y, cx, cy, rx, ry):
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def render_radiographs(labels: np.ndarray, size: int, contrast: float, rng: np.random.Generator) -> np.ndarray:
    """Intensities before acquisition, shape ``(N, size, size)``, for the given labels ``(N,)``."""
    n = len(labels)
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    x, y = x[None], y[None]

    def draw(low, high):  # one value per image, broadcastable over pixels
        return rng.uniform(low, high, size=(n, 1, 1)).astype(np.float32)

    body = _inside(x, y, 0, 0, draw(0.88, 0.97), draw(0.85, 0.95))
    image = np.where(body, 0.55, 0.05).astype(np.float32)
    lungs = []
    for side in (-1, 1):
        lung = (side * draw(0.34, 0.42), draw(-0.12, -0.02), draw(0.24, 0.3), draw(0.5, 0.6))
        lungs.append(lung)
        image = np.where(_inside(x, y, *lung), 0.2, image)
    lung_mask = _inside(x, y, *lungs[0]) | _inside(x, y, *lungs[1])
    ribs = 0.08 * np.maximum(0, np.cos(2 * np.pi * draw(4.0, 5.0) * (y + 0.3 * x**2) + draw(0, 6.3)))
    image = image + ribs * lung_mask
    heart = _inside(x, y, draw(0.02, 0.12), draw(0.2, 0.3), draw(0.22, 0.28), draw(0.2, 0.26))
    image = np.where(heart, 0.7, image)
    # The opacity: a blob in a random lung, present only where the label is 1.
    left = rng.integers(2, size=(n, 1, 1)).astype(bool)
    cx, cy, rx, ry = (np.where(left, a, b) for a, b in zip(*lungs))
    ox, oy = cx + draw(-0.5, 0.5) * rx, cy + draw(-0.5, 0.5) * ry
    sigma = draw(0.07, 0.12)
    blob = np.exp(-((x - ox) ** 2 + (y - oy) ** 2) / (2 * sigma**2))
    present = np.asarray(labels).reshape(n, 1, 1) == 1
    return (image + contrast * blob * lung_mask * present).astype(np.float32)
