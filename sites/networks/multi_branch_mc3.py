"""One MC3 branch per modality, predictions fused by averaging the branches' logits.

The network of late fusion and of cross-modality guidance (docs/design.md#grading): the two differ in
how the branches are trained (:mod:`sites.losses`), not in how they predict; feature guidance
adds a projection per branch, used only by the guidance loss.
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
    projections : bool
        Give every branch a linear map of its pooled features onto the same width
        (:meth:`project`, for :func:`~sites.losses.feature_guidance`). Made after the branches,
        so the branches start from the same weights with or without them.

    Shapes: input ``(N, num_modalities, D, H, W)``; :meth:`branch_features` and :meth:`project`
    return ``(N, num_modalities, channels[-1])``; :meth:`branch_logits` (and :meth:`classify`
    of features) ``(N, num_modalities, num_classes)``; :meth:`forward` their mean
    ``(N, num_classes)``.
    """

    def __init__(self, num_modalities: int, num_classes: int, channels: Sequence[int], conv3d_stages: int,
                 attention: bool, projections: bool = False) -> None:
        super().__init__()
        self.branches = nn.ModuleList(MC3(1, num_classes, channels, conv3d_stages, attention)
                                      for _ in range(num_modalities))
        if projections:
            self.projections = nn.ModuleList(nn.Linear(channels[-1], channels[-1]) for _ in range(num_modalities))

    def branch_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([branch.features(x[:, m : m + 1]) for m, branch in enumerate(self.branches)], dim=1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return torch.stack([branch.head(features[:, m]) for m, branch in enumerate(self.branches)], dim=1)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return torch.stack([projection(features[:, m]) for m, projection in enumerate(self.projections)], dim=1)

    def branch_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.branch_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch_logits(x).mean(dim=1)
