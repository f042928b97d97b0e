"""Pseudo-domains: a site's own images as virtual scanners would acquire them, so that PGA's
generalizability objective has domains to split before any earlier site is replayed (the first
stage, ``replay=none``; docs/continual.md, docs/design.md#pga).

A pseudo-domain is the site's training split seen through one **scanner signature**, drawn
once per domain and training call and held for every image of it, so that the domain differs
from the site the way one scanner differs from another, not image by image. The signature is
a chain of MONAI intensity transforms, on each image rescaled to [0, 1] per channel:

- a smooth multiplicative bias field (:class:`~monai.transforms.RandBiasField`, degree 3,
  coefficients in [0, 0.1], MONAI's defaults);
- a gamma contrast change (:class:`~monai.transforms.RandAdjustContrast`, γ in [0.7, 1.5]);
- a Gaussian blur (:class:`~monai.transforms.RandGaussianSmooth`, σ in [0.5, 1] pixels);
- Gaussian noise (:class:`~monai.transforms.RandGaussianNoise`), its standard deviation
  drawn per domain in [0, 0.05] of the intensity range and fresh noise per image;

then z-scored per channel, as every task's images are. γ, blur and noise follow nnU-Net's
default intensity augmentations (Isensee et al., 2021), chosen before any PGA run and not tuned
on our data. Intensity scale and offset are left out on purpose: the z-score removes them.

The first tensor of a training split is taken to be the image batch, channel first
(``(N, C, *spatial)``); the others (masks, labels) are kept as they are.
"""

from collections.abc import Sequence

import numpy as np
import torch
from monai.transforms import (
    NormalizeIntensity,
    RandAdjustContrast,
    RandBiasField,
    RandGaussianNoise,
    RandGaussianSmooth,
    ScaleIntensity,
)
from monai.utils import convert_to_tensor
from torch.utils.data import Dataset, TensorDataset

BIAS_COEFFICIENTS = (0.0, 0.1)
GAMMA = (0.7, 1.5)
BLUR_SIGMA = (0.5, 1.0)
NOISE_STD = 0.05


class ScannerSignature:
    """One virtual scanner: the transforms' parameters are drawn once, at construction, and
    every batch it acquires is acquired alike (fresh noise aside).

    Parameters
    ----------
    spatial_shape : sequence of int
        The images' spatial shape (2D or 3D), which the bias field is drawn for.
    rng : numpy.random.RandomState
        Draws the signature, then each batch's noise.
    """

    def __init__(self, spatial_shape: Sequence[int], rng: np.random.RandomState) -> None:
        self._rescale = ScaleIntensity(minv=0.0, maxv=1.0, channel_wise=True)
        self._normalize = NormalizeIntensity(channel_wise=True)
        bias = RandBiasField(coeff_range=BIAS_COEFFICIENTS, prob=1.0)
        self._contrast = RandAdjustContrast(prob=1.0, gamma=GAMMA)
        self._blur = RandGaussianSmooth(sigma_x=BLUR_SIGMA, sigma_y=BLUR_SIGMA, sigma_z=BLUR_SIGMA, prob=1.0)
        for transform in (bias, self._contrast, self._blur):
            transform.set_random_state(state=rng)
        bias.randomize(img_size=spatial_shape)
        self._contrast.randomize()
        self._blur.randomize()
        # The field is the same for every image: computed once, as the multiplier it is.
        self._field = convert_to_tensor(bias(torch.ones(1, *spatial_shape), randomize=False), track_meta=False)
        self._noise = RandGaussianNoise(prob=1.0, std=float(rng.uniform(0.0, NOISE_STD)), sample_std=False)
        self._noise.set_random_state(state=rng)

    @property
    def gamma(self) -> float:
        return float(self._contrast.gamma_value)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` ``(N, C, *spatial)`` as this scanner acquires them, z-scored per image
        and channel."""
        # Every (image, channel) becomes a channel of one array, which the transforms treat
        # channel by channel where it matters (rescaling, blur, z-score).
        x = self._rescale(images.reshape(-1, *images.shape[2:])) * self._field.to(images.device)
        x = self._blur(self._contrast(x, randomize=False), randomize=False)
        x = self._normalize(self._noise(x))
        return convert_to_tensor(x, dtype=images.dtype, device=images.device, track_meta=False).reshape(images.shape)


class PseudoDomain(Dataset):
    """``data`` with its images (the first tensor) acquired by ``signature``, a batch at a
    time (:class:`~torch.utils.data.DataLoader` fetches through ``__getitems__``)."""

    def __init__(self, data: TensorDataset, signature: ScannerSignature) -> None:
        self.data, self.signature = data, signature

    def __len__(self) -> int:
        return len(self.data)

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, ...]]:
        images, *rest = (tensor[indices] for tensor in self.data.tensors)
        return list(zip(self.signature(images), *rest))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return self.__getitems__([index])[0]


def pseudo_domains(data: TensorDataset, count: int, seed: int) -> dict[str, PseudoDomain]:
    """``count`` pseudo-domains of ``data`` (``pseudo-1``, ``pseudo-2``, …), each with its own
    signature, seeded by ``seed``."""
    spatial_shape = tuple(data.tensors[0].shape[2:])
    rng = np.random.RandomState(seed)
    return {f"pseudo-{k + 1}": PseudoDomain(data, ScannerSignature(spatial_shape, rng)) for k in range(count)}
