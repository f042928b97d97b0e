"""Dual attention for slice-stacked 3D feature maps (docs/design.md#grading).

Two residual branches, each scaled by a learnable factor that starts at 0, so a network with
attention begins exactly as the one without and lets training decide how much to attend:

- :class:`SpatialAttention`: within every slice, each position attends to every other position;
- :class:`SliceAttention`: each slice attends to every other slice of the volume.

Shapes: input and output ``(N, C, D, H, W)``, ``D`` the slice axis.
"""

import torch
from torch import nn


class SpatialAttention(nn.Module):
    """Self-attention over the ``H x W`` positions of each slice, slices independent.

    Parameters
    ----------
    channels : int
        ``C`` of the feature map.
    reduction : int
        Query and key use ``max(1, C // reduction)`` channels.
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        inner = max(1, channels // reduction)
        self.query = nn.Conv3d(channels, inner, kernel_size=1)
        self.key = nn.Conv3d(channels, inner, kernel_size=1)
        self.value = nn.Conv3d(channels, channels, kernel_size=1)
        self.scale = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, d, h, w = x.shape

        def per_slice(t: torch.Tensor) -> torch.Tensor:  # (N, C', D, H, W) -> (N * D, H * W, C')
            return t.permute(0, 2, 3, 4, 1).reshape(n * d, h * w, t.shape[1])

        attended = nn.functional.scaled_dot_product_attention(
            per_slice(self.query(x)), per_slice(self.key(x)), per_slice(self.value(x)))
        attended = attended.reshape(n, d, h, w, c).permute(0, 4, 1, 2, 3)
        return x + self.scale * attended


class SliceAttention(nn.Module):
    """Self-attention between the ``D`` slices: the weights come from each slice's pooled
    descriptor, the values are the whole slices.

    Parameters
    ----------
    channels : int
        ``C`` of the feature map.
    reduction : int
        Query and key use ``max(1, C // reduction)`` features.
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        inner = max(1, channels // reduction)
        self.query = nn.Linear(channels, inner)
        self.key = nn.Linear(channels, inner)
        self.scale = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, d, h, w = x.shape
        descriptor = x.mean(dim=(3, 4)).transpose(1, 2)  # (N, D, C)
        slices = x.transpose(1, 2).reshape(n, d, c * h * w)
        attended = nn.functional.scaled_dot_product_attention(
            self.query(descriptor), self.key(descriptor), slices)
        return x + self.scale * attended.reshape(n, d, c, h, w).transpose(1, 2)


class DualAttention(nn.Module):
    """Spatial attention, then slice attention, each residual with a zero-initialised scale.

    Parameters
    ----------
    channels : int
        ``C`` of the feature map.
    reduction : int
        Query/key reduction of both branches.
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.spatial = SpatialAttention(channels, reduction)
        self.slices = SliceAttention(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.slices(self.spatial(x))
