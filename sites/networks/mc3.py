"""ResNet Mixed Convolution (MC3) classifier for slice-stacked volumes (docs/design.md#grading).

Early stages convolve in full 3D (3 x 3 x 3), later ones within slices only (1 x 3 x 3): the
cheap mix that lets a small network see through-plane structure first and in-plane detail
after. Built from MONAI's residual units; trained from scratch (nothing is downloaded).
"""

from collections.abc import Sequence

import torch
from monai.networks.blocks import ResidualUnit
from torch import nn

from .dual_attention import DualAttention


class MC3(nn.Module):
    """MC3 backbone, optional dual attention on its last feature map, global pooling, a linear head.

    Parameters
    ----------
    in_channels : int
        Input channels (1 for one modality, 4 for early fusion).
    num_classes : int
        Output logits.
    channels : sequence of int
        Channels of each residual stage; every stage halves ``H`` and ``W`` (never ``D``).
    conv3d_stages : int
        How many leading stages use 3 x 3 x 3 kernels; the rest use 1 x 3 x 3.
    attention : bool
        Apply :class:`~sites.networks.dual_attention.DualAttention` before pooling.

    Shapes: input ``(N, in_channels, D, H, W)`` with ``H`` and ``W`` divisible by
    ``2 ** len(channels)``; :meth:`features` returns ``(N, channels[-1])``; :meth:`forward`
    returns logits ``(N, num_classes)``.
    """

    def __init__(self, in_channels: int, num_classes: int, channels: Sequence[int], conv3d_stages: int,
                 attention: bool) -> None:
        super().__init__()
        if not 0 <= conv3d_stages <= len(channels):
            raise ValueError(f"conv3d_stages must be in [0, {len(channels)}] (got {conv3d_stages})")
        stages, previous = [], in_channels
        for i, width in enumerate(channels):
            kernel = 3 if i < conv3d_stages else (1, 3, 3)
            stages.append(ResidualUnit(3, previous, width, strides=(1, 2, 2), kernel_size=kernel, subunits=2))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.attention = DualAttention(previous) if attention else nn.Identity()
        self.head = nn.Linear(previous, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.stages(x)).mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
