"""Local objectives that train on the current site's batch together with replayed earlier
sites (docs/design.md#pga): plain experience replay, and Parallel Gradient Alignment (PGA).

PGA's dual meta-objectives use ``meta(A, B) = L_A(θ) + L_B(θ − α ∇L_A(θ))``, whose gradient
``∇L_A(θ) + (I − α ∇²L_A(θ)) ∇L_B(θ')`` rewards ``⟨∇L_A, ∇L_B⟩`` (first-order Taylor expansion
of ``L_B(θ')``):

- memorizability: A = the current batch, B = a replay batch of the earlier sites;
- generalizability: the available domains (the current site, each replayed site and the site's
  pseudo-domains) split afresh at every step into meta-train (A) and one meta-test domain (B),
  as in MLDG.

The step minimises ``meta_mem + λ meta_gen``. By default ``∇L_A`` is treated as a constant
inside ``θ'`` (first order: the Hessian term is dropped, no ``create_graph``); the
``second_order`` option keeps it, for checking the approximation.

Each objective is an :data:`~sites.tasks.base.Objective` that :meth:`Task.train` runs with
its usual optimizer, batches and step count; the replay batches come from the objective's
own seeded stream.
"""

import functools
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from . import seeding
from .alignment_meter import AlignmentMeter
from .protocol import ReplayOptions, TrainConfig
from .pseudo_domains import pseudo_domains
from .tasks import Objective, Task

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


def meta_terms(model: nn.Module, loss: BatchLoss, a: list[torch.Tensor], b: list[torch.Tensor], alpha: float,
               second_order: bool = False,
               inner_step: str = "sgd") -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor | None, ...]]:
    """The two terms of the meta-objective, ``L_A(θ)`` and ``L_B(θ')`` with
    ``θ' = θ − s ∇L_A(θ)``, and ``∇L_A(θ)`` (``None`` for unused parameters): ``s = α``
    (``sgd``) or ``α / rms(∇L_A)`` (``normalized``, the scale held constant). ``∇L_A`` is
    constant in ``θ'`` unless ``second_order``."""
    params = dict(model.named_parameters())
    loss_a = loss(model, a)
    # Second order, the step backpropagates through L_A and its gradient again. First order,
    # ∇L_A is all the step needs of L_A, and it is known here: no second pass through L_A.
    grads = torch.autograd.grad(loss_a, list(params.values()), retain_graph=second_order, create_graph=second_order,
                                allow_unused=True)
    if not second_order:
        loss_a = with_gradient(loss_a, params.values(), grads)
    scale = alpha
    if inner_step == "normalized":
        used = [g.detach() for g in grads if g is not None]
        squares = sum(g.pow(2).sum() for g in used)
        rms = (squares / sum(g.numel() for g in used)).sqrt()
        scale = alpha / rms.clamp_min(torch.finfo(rms.dtype).tiny)
    adapted = {f"model.{name}": p if g is None else p - scale * g for (name, p), g in zip(params.items(), grads)}
    return loss_a, torch.func.functional_call(_Loss(model, loss), adapted, (b,)), grads


def with_gradient(value: torch.Tensor, params: Iterable[torch.Tensor],
                  grads: Iterable[torch.Tensor | None]) -> torch.Tensor:
    """``value``, detached, as a tensor whose gradient in ``params`` is ``grads`` (``None``:
    zero): a backward pass through it costs one product per parameter."""
    link = sum(((p * g.detach()).sum() for p, g in zip(params, grads) if g is not None), value.new_zeros(()))
    return value.detach() + (link - link.detach())


def meta_loss(model: nn.Module, loss: BatchLoss, a: list[torch.Tensor], b: list[torch.Tensor], alpha: float,
              second_order: bool = False, inner_step: str = "sgd") -> torch.Tensor:
    """``L_A(θ) + L_B(θ − α ∇L_A(θ))`` (``∇L_A`` normalized to unit RMS with ``inner_step``
    ``normalized``); first order unless ``second_order``."""
    loss_a, loss_b, _ = meta_terms(model, loss, a, b, alpha, second_order, inner_step)
    return loss_a + loss_b


def flat(grads: Iterable[torch.Tensor | None], model: nn.Module) -> torch.Tensor:
    """Gradients of every parameter of ``model`` (``None``: unused) as one detached vector."""
    return torch.cat([torch.zeros_like(p).flatten() if g is None else g.detach().flatten()
                      for p, g in zip(model.parameters(), grads)])


def flat_gradient(value: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """``∇value`` over every parameter of ``model`` as one vector (:func:`flat`); the graph is
    kept for the training step's own backward pass."""
    return flat(torch.autograd.grad(value, list(model.parameters()), retain_graph=True, allow_unused=True), model)


def concat(batches: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """One batch made of several (tensor by tensor)."""
    return [torch.cat(parts) for parts in zip(*batches)]


class DomainBatches:
    """Endless, seeded mini-batches of each domain (replayed site or pseudo-domain)."""

    def __init__(self, domains: Mapping[str, Dataset], generator: torch.Generator) -> None:
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


#: ``meta(a, b)``: a meta-objective of meta-train batch ``a`` and meta-test batch ``b``.
MetaObjective = Callable[[list[torch.Tensor], list[torch.Tensor]], torch.Tensor]


def _mldg(meta: MetaObjective, draw: Callable[[str, int], list[torch.Tensor]], domains: list[str], size: int,
          generator: torch.Generator) -> torch.Tensor:
    """PGA's generalizability objective: one domain drawn as meta-test, the others meta-train."""
    held = domains[int(torch.randint(len(domains), (1,), generator=generator))]
    train = [name for name in domains if name != held]
    share = math.ceil(size / len(train))
    return meta(concat([draw(name, share) for name in train]), draw(held, size))


def replay_objective(loss: BatchLoss, replay: Mapping[str, TensorDataset], options: ReplayOptions,
                     seed: int, meter: AlignmentMeter | None = None,
                     pseudo: Mapping[str, Dataset] | None = None) -> Objective:
    """The objective of one site's local training with ``replay`` (replayed site -> its
    samples, in the format of the task's training split); PGA's steps are measured by
    ``meter`` where given (the steps it picks).

    ``pseudo`` (name -> dataset: :mod:`sites.pseudo_domains`) are domains made of the site's
    own images that join PGA's generalizability objective only: the orientational one aligns
    with earlier sites. With neither replay nor pseudo-domains the objective is the plain loss.
    """
    generator = torch.Generator().manual_seed(seed)
    pseudo = dict(pseudo or {})
    batches = DomainBatches({**replay, **pseudo}, generator)
    earlier = list(replay)
    generalizing = [CURRENT, *earlier, *pseudo] if options.objective == "pga" and options.arbitrary else []

    def objective(model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        size = len(batch[0])
        if not earlier and len(generalizing) < 2:
            return loss(model, batch)
        if options.objective == "mix":
            return loss(model, concat([batch, batches.mixed(earlier, size)]))
        measured = meter is not None and meter.due()

        def meta(weight: float, a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
            loss_a, loss_b, grad_a = meta_terms(model, loss, a, b, options.alpha, options.second_order,
                                                options.inner_step)
            if measured:
                meter.add(weight, flat(grad_a, model), flat_gradient(loss(model, b), model),
                          flat_gradient(loss_b, model))
            return weight * (loss_a + loss_b)

        if options.orientational and earlier:
            total = meta(1.0, batch, batches.mixed(earlier, size))
        else:
            total = loss(model, batch)
            if measured:
                meter.add_plain(flat_gradient(total, model))
        if generalizing:
            def draw(name: str, k: int) -> list[torch.Tensor]:
                return [tensor[:k] for tensor in batch] if name == CURRENT else batches.draw(name, k)

            total = total + _mldg(functools.partial(meta, options.weight), draw, generalizing, size, generator)
        if measured:
            meter.close()
        return total

    return objective


def task_replay_objective(task: Task, model: nn.Module, config: TrainConfig, own: TensorDataset,
                          replay: Mapping[str, TensorDataset], options: ReplayOptions, seed: int,
                          meter: AlignmentMeter | None = None, loss: BatchLoss | None = None) -> Objective:
    """:func:`replay_objective` of ``loss`` (default: ``task``'s loss in ``config``'s phase),
    for :meth:`Task.train` on ``own`` (a training split, as that method takes it) with
    ``replay`` (earlier sites) and, where ``options`` ask for them, pseudo-domains of ``own``
    (drawn from ``seed``). Each domain is made into what the phase trains on
    (:meth:`Task.training_data`), on the task's device. A site trains on its own split this
    way; PGA's server on its newest replayed site."""
    def prepared(data: TensorDataset) -> TensorDataset:
        return task.compute.dataset(task.training_data(model, data, config))

    pseudo = (pseudo_domains(prepared(own), options.pseudo_domains,
                             seeding.stream_seed(seed, seeding.Stream.PSEUDO_DOMAINS))
              if options.with_pseudo_domains else {})
    loss = loss or (lambda network, batch: task.batch_loss(network, batch, config))
    return replay_objective(loss, {name: prepared(data) for name, data in replay.items()}, options, seed, meter,
                            pseudo)
