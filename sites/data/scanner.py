"""A site's acquisition: the same anatomy rendered through one scanner signature.

The intensity steps use MONAI's transforms (Gaussian smoothing, bias field, Gaussian noise),
seeded per site so that a site's look is reproducible.
"""

import numpy as np
from monai.transforms import GaussianSmooth, RandBiasField, RandGaussianNoise

from ..spec import ScannerSignature
from .prostate import AIR, BLADDER, ORGAN, RECTUM, TISSUE, Anatomy

# Tissue intensities every scanner shares; the organ's is set by the signature's contrast.
_BASE_INTENSITY = {AIR: 0.0, TISSUE: 0.45, BLADDER: 0.85, RECTUM: 0.2}


def check_signature(scanner: ScannerSignature) -> None:
    """Raise ``ValueError`` naming the first out-of-range field."""
    if scanner.gain <= 0:
        raise ValueError(f"scanner.gain must be > 0 (got {scanner.gain})")
    for name in ("noise", "blur", "bias_field"):
        value = getattr(scanner, name)
        if value < 0 or not np.isfinite(value):
            raise ValueError(f"scanner.{name} must be a finite number >= 0 (got {value})")


def acquire(anatomy: Anatomy, scanner: ScannerSignature, rng: np.random.Generator) -> np.ndarray:
    """Render anatomy as a scanner would.

    Returns
    -------
    np.ndarray
        Images of shape ``(N, 1, H, W)``, float32.
    """
    check_signature(scanner)
    lookup = np.zeros(max(_BASE_INTENSITY) + 1, dtype=np.float32)
    for tissue, value in _BASE_INTENSITY.items():
        lookup[tissue] = value
    lookup[ORGAN] = _BASE_INTENSITY[TISSUE] + scanner.contrast
    body = anatomy.tissue != AIR
    images = lookup[anatomy.tissue] + anatomy.texture * body
    images = (scanner.gain * images + scanner.offset)[:, None].astype(np.float32)

    steps = []
    if scanner.blur > 0:
        steps.append(GaussianSmooth(sigma=scanner.blur))
    if scanner.bias_field > 0:
        field = RandBiasField(coeff_range=(0.0, scanner.bias_field), prob=1.0)
        field.set_random_state(state=np.random.RandomState(rng.integers(2**31)))
        steps.append(field)
    if scanner.noise > 0:
        noise = RandGaussianNoise(prob=1.0, std=scanner.noise, sample_std=False)
        noise.set_random_state(state=np.random.RandomState(rng.integers(2**31)))
        steps.append(noise)
    for i in range(len(images)):
        image = images[i]
        for step in steps:
            image = step(image)
        images[i] = np.asarray(image, dtype=np.float32)
    return images
