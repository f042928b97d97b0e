"""One MC3 branch per modality, predictions fused by averaging the branches' logits.

The network of late fusion and of cross-modality guidance (DESIGN.md §1.2): the two differ in
how the branches are trained (:func:`sites.losses.cross_modality_guidance`), not in shape.
"""

from collections.abc import Sequence

import torch
from torch import nn

from .mc3 import MC3


class MultiBranchMC3(nn.Module):
    """``num_modalities`` single-channel :class:`~sites.networks.mc3.MC3` classifiers.

    Parameters
    ----------
    num_modalities : int
        Branches, one per input channel.
    num_classes, channels, conv3d_stages, attention
        Of every branch; see :class:`~sites.networks.mc3.MC3`.

    Shapes: input ``(N, num_modalities, D, H, W)``; :meth:`branch_logits` returns
    ``(N, num_modalities, num_classes)``; :meth:`forward` returns their mean ``(N, num_classes)``.
    """

    def __init__(self, num_modalities: int, num_classes: int, channels: Sequence[int], conv3d_stages: int,
                 attention: bool) -> None:
        super().__init__()
        self.branches = nn.ModuleList(MC3(1, num_classes, channels, conv3d_stages, attention)
                                      for _ in range(num_modalities))

    def branch_logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([branch(x[:, m : m + 1]) for m, branch in enumerate(self.branches)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch_logits(x).mean(dim=1)
