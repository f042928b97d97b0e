"""Local objectives that train on the current site's batch together with replayed earlier
sites (DESIGN.md §1.1): plain experience replay, and Parallel Gradient Alignment (PGA).

PGA's dual meta-objectives use ``meta(A, B) = L_A(θ) + L_B(θ − α ∇L_A(θ))``, whose gradient
``∇L_A(θ) + (I − α ∇²L_A(θ)) ∇L_B(θ')`` rewards ``⟨∇L_A, ∇L_B⟩`` (first-order Taylor expansion
of ``L_B(θ')``):

- memorizability: A = the current batch, B = a replay batch of the earlier sites;
- generalizability: the available domains (the current site and each replayed site) split
  afresh at every step into meta-train (A) and one meta-test domain (B), as in MLDG.

The step minimises ``meta_mem + λ meta_gen``. By default ``∇L_A`` is treated as a constant
inside ``θ'`` (first order: the Hessian term is dropped, no ``create_graph``); the
``second_order`` option keeps it, for checking the approximation.

Each objective is an :data:`~sites.tasks.base.Objective` that :meth:`Task.train` runs with
its usual optimizer, batches and step count; the replay batches come from the objective's
own seeded stream.
"""

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .protocol import ReplayOptions
from .tasks import Objective

#: ``loss(model, batch)``: the task's training loss of one batch.
BatchLoss = Callable[[nn.Module, list[torch.Tensor]], torch.Tensor]

CURRENT = "current"


class _Loss(nn.Module):
    """Wraps ``loss(model, batch)`` as a module, so that :func:`torch.func.functional_call`
    can evaluate it at other parameters whatever methods of the model the task calls."""

    def __init__(self, model: nn.Module, loss: BatchLoss) -> None:
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, batch: list[torch.Tensor]) -> torch.Tensor:
        return self.loss(self.model, batch)


def meta_loss(model: nn.Module, loss: BatchLoss, a: list[torch.Tensor], b: list[torch.Tensor], alpha: float,
              second_order: bool = False) -> torch.Tensor:
    """``L_A(θ) + L_B(θ − α ∇L_A(θ))``; first order unless ``second_order``."""
    params = dict(model.named_parameters())
    loss_a = loss(model, a)
    # The graph of L_A is kept: the step backpropagates through L_A itself too.
    grads = torch.autograd.grad(loss_a, list(params.values()), retain_graph=True, create_graph=second_order,
                                allow_unused=True)
    adapted = {f"model.{name}": p if g is None else p - alpha * g for (name, p), g in zip(params.items(), grads)}
    return loss_a + torch.func.functional_call(_Loss(model, loss), adapted, (b,))


def concat(batches: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """One batch made of several (tensor by tensor)."""
    return [torch.cat(parts) for parts in zip(*batches)]


class DomainBatches:
    """Endless, seeded mini-batches of each domain (replayed site)."""

    def __init__(self, domains: Mapping[str, TensorDataset], generator: torch.Generator) -> None:
        self._generator = generator
        self._domains = dict(domains)
        self._streams: dict[tuple[str, int], Any] = {}

    @property
    def names(self) -> list[str]:
        return list(self._domains)

    def draw(self, name: str, size: int) -> list[torch.Tensor]:
        """The next batch of ``size`` samples of domain ``name``."""
        key = (name, size)
        if key not in self._streams:
            loader = DataLoader(self._domains[name], batch_size=size, shuffle=True, generator=self._generator,
                                drop_last=len(self._domains[name]) >= size)
            self._streams[key] = itertools.chain.from_iterable(loader for _ in itertools.count())
        return list(next(self._streams[key]))

    def mixed(self, names: list[str], size: int) -> list[torch.Tensor]:
        """About ``size`` samples spread evenly over the domains ``names``."""
        share = math.ceil(size / len(names))
        return concat([self.draw(name, share) for name in names])


def _mldg(model: nn.Module, loss: BatchLoss, draw: Callable[[str, int], list[torch.Tensor]], domains: list[str],
          size: int, options: ReplayOptions, generator: torch.Generator) -> torch.Tensor:
    """PGA's generalizability objective: one domain drawn as meta-test, the others meta-train."""
    held = domains[int(torch.randint(len(domains), (1,), generator=generator))]
    train = [name for name in domains if name != held]
    share = math.ceil(size / len(train))
    meta_train = concat([draw(name, share) for name in train])
    return meta_loss(model, loss, meta_train, draw(held, size), options.alpha, options.second_order)


def replay_objective(loss: BatchLoss, replay: Mapping[str, TensorDataset], options: ReplayOptions,
                     seed: int) -> Objective:
    """The objective of one site's local training with ``replay`` (replayed site -> its
    samples, in the format of the task's training split).

    With no replay (the first stage, or the no-replay ablation) only PGA's generalizability
    objective could still apply, and it needs two domains: the objective is the plain loss.
    """
    generator = torch.Generator().manual_seed(seed)
    batches = DomainBatches(replay, generator)
    earlier = batches.names

    def objective(model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        size = len(batch[0])
        if not earlier:
            return loss(model, batch)
        if options.objective == "mix":
            return loss(model, concat([batch, batches.mixed(earlier, size)]))
        if options.orientational:
            total = meta_loss(model, loss, batch, batches.mixed(earlier, size), options.alpha, options.second_order)
        else:
            total = loss(model, batch)
        if options.arbitrary:
            def draw(name: str, k: int) -> list[torch.Tensor]:
                return [tensor[:k] for tensor in batch] if name == CURRENT else batches.draw(name, k)

            total = total + options.weight * _mldg(model, loss, draw, [CURRENT, *earlier], size, options, generator)
        return total

    return objective


def alignment_objective(loss: BatchLoss, domains: Mapping[str, TensorDataset], options: ReplayOptions,
                        seed: int) -> Objective:
    """PGA's generalizability objective over ``domains`` alone (at least two): the server's
    meta-step on replay. The batch :meth:`Task.train` passes sets only the batch size."""
    if len(domains) < 2:
        raise ValueError(f"the alignment objective needs at least two domains (got {len(domains)})")
    generator = torch.Generator().manual_seed(seed)
    batches = DomainBatches(domains, generator)

    def objective(model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        return _mldg(model, loss, batches.draw, batches.names, len(batch[0]), options, generator)

    return objective
