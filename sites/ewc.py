"""Elastic weight consolidation (Kirkpatrick et al., 2017), the site's side: the diagonal
Fisher information of its data, and the penalty that keeps later training near earlier
solutions where the Fisher says they matter.
"""

import torch
from torch import nn
from torch.utils.data import TensorDataset

from .device import Compute
from .tasks import ClassLogits, Objective


def fisher_diagonal(task: ClassLogits, model: nn.Module, data: TensorDataset, max_samples: int,
                    seed: int, compute: Compute = Compute()) -> dict[str, torch.Tensor]:
    """Empirical Fisher ``mean_i (∂ log p(y_i | x_i) / ∂θ)²`` over up to ``max_samples``
    samples of ``data`` (drawn with ``seed``), one entry per parameter of ``model``, computed on
    ``compute``'s device and returned on the CPU."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:max_samples]
    with compute.placed(model):
        params = dict(model.named_parameters())
        fisher = {name: torch.zeros_like(p) for name, p in params.items()}
        model.eval()
        for index in order:
            sample = compute.put([tensor[index:index + 1] for tensor in data.tensors])
            with compute.autocast():
                loss = task.per_sample_loss(model, sample).sum()
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for name, grad in zip(params, grads):
                if grad is not None:
                    fisher[name] += grad.pow(2)
    return {name: (value / len(order)).cpu() for name, value in fisher.items()}


def ewc_penalty(model: nn.Module, fisher: dict[str, torch.Tensor], anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """``1/2 Σ F (θ − θ*)²`` over the parameters that have a Fisher entry."""
    params = dict(model.named_parameters())
    return 0.5 * sum((fisher[name] * (params[name] - anchor[name]).pow(2)).sum() for name in fisher)


def with_ewc(objective: Objective, fisher: dict[str, torch.Tensor], anchor: dict[str, torch.Tensor],
             weight: float) -> Objective:
    """``objective + weight * penalty``."""
    return lambda model, batch: objective(model, batch) + weight * ewc_penalty(model, fisher, anchor)
