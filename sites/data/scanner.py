"""A site's acquisition: rendered anatomy passed through one scanner signature.

Anatomy modules render intensities (using the signature's ``contrast`` for their target);
:func:`acquire` then applies what every scanner does to every image: gain and offset, blur,
bias field and noise, with MONAI's transforms, seeded per site so a site's look is reproducible.
"""

import numpy as np
from monai.transforms import GaussianSmooth, RandBiasField, RandGaussianNoise

from ..spec import ScannerSignature


def acquire(images: np.ndarray, scanner: ScannerSignature, rng: np.random.Generator) -> np.ndarray:
    """Apply a scanner signature to rendered intensities.

    Parameters
    ----------
    images : np.ndarray
        Rendered intensities, shape ``(N, *spatial)``: slices ``(N, H, W)`` or volumes ``(N, D, H, W)``.
    scanner : ScannerSignature
        The signature (its ``contrast`` is the renderer's business, not used here).
    rng : np.random.Generator
        Seeds the bias field and the noise.

    Returns
    -------
    np.ndarray
        Images of shape ``(N, 1, *spatial)``, float32.
    """
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
