"""A debiased classifier together with the bias-capturing classifiers it learns against."""

from collections.abc import Sequence

import torch
from monai.networks.nets import Classifier
from torch import nn


class DebiasingNet(nn.Module):
    """Main classifier plus ``num_bias_models`` bias-capturing classifiers of the same shape.

    All of them travel as one model, so a federated strategy averages each part; a training
    phase updates only the part its loss touches.

    Parameters
    ----------
    in_shape : sequence of int
        ``(channels, H, W)`` of an input image.
    channels : sequence of int
        MONAI ``Classifier`` channels per level.
    strides : sequence of int
        MONAI ``Classifier`` strides per level.
    num_res_units : int
        Residual units per level.
    num_bias_models : int
        How many bias-capturing classifiers (0 for plain training).

    Shapes: input ``(N, C, H, W)``; :meth:`forward` returns the main classifier's logits
    ``(N, 2)``; :meth:`bias_probability` returns ``(N,)``.
    """

    def __init__(self, in_shape: Sequence[int], channels: Sequence[int], strides: Sequence[int],
                 num_res_units: int, num_bias_models: int) -> None:
        super().__init__()

        def classifier() -> Classifier:
            return Classifier(in_shape=in_shape, classes=2, channels=channels, strides=strides,
                              num_res_units=num_res_units)

        self.main = classifier()
        self.bias = nn.ModuleList(classifier() for _ in range(num_bias_models))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.main(images)

    def bias_probability(self, images: torch.Tensor, models: range | None = None) -> torch.Tensor:
        """Mean over the bias-capturing classifiers ``models`` (default all) of their
        probability of class 1."""
        chosen = self.bias if models is None else [self.bias[k] for k in models]
        return torch.stack([net(images).softmax(dim=1)[:, 1] for net in chosen]).mean(dim=0)
