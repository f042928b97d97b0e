"""A one-weight model and its squared error, for objectives whose gradients are written by hand."""

import torch
from torch import nn


class Scalar(nn.Module):
    """``y = w * x`` with one weight, so every gradient can be written by hand."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x


def squared_error(model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return (model(x) - y).pow(2).mean()
