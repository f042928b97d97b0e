"""Prostate-like pelvic MRI slices: the anatomy, shared by every site.

Each slice is a tissue map (air, soft tissue, organ, bladder, rectum) plus a smooth texture.
The organ (the segmentation target) has an irregular outline and varies in size and position;
a bladder above it and a rectum below it are nearby distractors. Sites differ only in how their
scanner renders this anatomy (the organ's contrast here, the rest in :mod:`sites.data.scanner`).
"""

from dataclasses import dataclass

import numpy as np

AIR, TISSUE, ORGAN, BLADDER, RECTUM = range(5)

# Tissue intensities every scanner shares; the organ's is set by the scanner's contrast.
_BASE_INTENSITY = {AIR: 0.0, TISSUE: 0.45, BLADDER: 0.85, RECTUM: 0.2}


@dataclass(frozen=True)
class Anatomy:
    """A batch of slices before acquisition.

    Attributes
    ----------
    tissue : np.ndarray
        Integer tissue class per pixel, shape ``(N, H, W)``.
    texture : np.ndarray
        Smooth zero-mean intensity texture, shape ``(N, H, W)``.
    """

    tissue: np.ndarray
    texture: np.ndarray

    @property
    def organ_mask(self) -> np.ndarray:
        """Binary organ mask, shape ``(N, H, W)``."""
        return (self.tissue == ORGAN).astype(np.uint8)

    def render(self, contrast: float) -> np.ndarray:
        """Intensities before acquisition, shape ``(N, H, W)``: each tissue at its shared
        intensity, the organ at the surrounding tissue's plus ``contrast``, texture inside the body."""
        lookup = np.zeros(max(_BASE_INTENSITY) + 1, dtype=np.float32)
        for tissue, value in _BASE_INTENSITY.items():
            lookup[tissue] = value
        lookup[ORGAN] = _BASE_INTENSITY[TISSUE] + contrast
        return lookup[self.tissue] + self.texture * (self.tissue != AIR)


def _ellipse(x, y, cx, cy, rx, ry, wobble=None, theta=None):
    r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return r <= (1.0 if wobble is None else 1.0 + wobble(theta))


def sample_anatomy(n: int, size: int, rng: np.random.Generator, field_of_view: float = 1.0) -> Anatomy:
    """Draw ``n`` slices of ``size`` x ``size`` pixels, imaging ``[-field_of_view,
    field_of_view]`` of the body's coordinates on each axis (the body's half-width is about 0.85):
    the same draws of ``rng`` give the same bodies whatever the field of view."""
    axis = np.linspace(-field_of_view, field_of_view, size, dtype=np.float32)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    tissue = np.zeros((n, size, size), dtype=np.uint8)
    texture = np.zeros((n, size, size), dtype=np.float32)
    for i in range(n):
        body = _ellipse(x, y, 0, 0, rng.uniform(0.8, 0.92), rng.uniform(0.65, 0.78))
        cx, cy = rng.uniform(-0.12, 0.12), rng.uniform(-0.08, 0.12)
        rx, ry = rng.uniform(0.17, 0.3), rng.uniform(0.14, 0.25)
        a2, a3 = rng.uniform(0.0, 0.12, size=2)
        p2, p3 = rng.uniform(0, 2 * np.pi, size=2)
        theta = np.arctan2(y - cy, x - cx)
        organ = _ellipse(
            x, y, cx, cy, rx, ry,
            wobble=lambda t: a2 * np.cos(2 * t + p2) + a3 * np.cos(3 * t + p3),
            theta=theta,
        )
        bladder = _ellipse(x, y, cx + rng.uniform(-0.1, 0.1), cy - ry - rng.uniform(0.12, 0.2),
                           rng.uniform(0.12, 0.22), rng.uniform(0.09, 0.16))
        rectum = _ellipse(x, y, cx + rng.uniform(-0.05, 0.05), cy + ry + rng.uniform(0.1, 0.14),
                          rng.uniform(0.07, 0.11), rng.uniform(0.06, 0.09))
        labels = np.where(body, TISSUE, AIR)
        labels = np.where(body & bladder, BLADDER, labels)
        labels = np.where(body & rectum, RECTUM, labels)
        labels = np.where(organ, ORGAN, labels)
        tissue[i] = labels
        # Low-frequency texture: a few random plane waves.
        freq = rng.uniform(1.0, 5.0, size=(4, 2)) * rng.choice([-1, 1], size=(4, 2))
        phase = rng.uniform(0, 2 * np.pi, size=4)
        waves = np.cos(np.pi * (freq[:, :1, None] * x + freq[:, 1:, None] * y) + phase[:, None, None])
        texture[i] = 0.05 * waves.mean(axis=0)
    return Anatomy(tissue=tissue, texture=texture)
