"""Unlearning objectives a site runs on its own training split (docs/design.md#unlearning).

The withdrawing site runs the *forget* objective on its data as its last act; for the methods
with a retain term (``graddiff``, ``kl``) the remaining sites run the *retain* objective on
theirs in the same round, from the same model, and the server adds the two updates: the
gradient of a sum is the sum of the gradients, so for one SGD step this is exactly one step on
the combined loss; with several Adam steps it is the usual federated approximation. ``ref``
below is the model before withdrawal. With ``privacy=dp`` both parts are DP-SGD steps on the
site's data (per-sample clipping, noise), charged to the site's accountant like training.

- ``ga``: forget ``-mean NLL``;
- ``graddiff``: forget ``-mean NLL``, retain ``mean NLL``;
- ``kl``: forget ``-mean NLL``, retain ``KL(p_ref || p)``;
- ``npo``: forget ``(2 / beta) mean softplus(beta (NLL_ref - NLL))``.

Each is a :class:`SiteObjective` in :data:`SITE_OBJECTIVES`, which a user's objective joins.

NLL is the task's per-sample cross entropy (:meth:`~sites.tasks.capabilities.ClassLogits.per_sample_loss`).
NPO is the loss of Zhang et al. (2024), ``-(2/beta) log sigmoid(-beta log(p / p_ref))``; with
``log(p / p_ref) = NLL_ref - NLL`` that is ``(2/beta) softplus(beta (NLL_ref - NLL))``: it falls
towards 0 as the model's NLL on the forget set rises above the reference's, so unlike gradient
ascent it is bounded below. The sign is easy to invert: ``-(2/beta) log sigmoid(-beta (NLL - NLL_ref))``
has its minimum at a *lower* forget NLL, i.e. it would learn the forget set.
"""

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .privacy import PrivateTraining
from .protocol import TrainConfig, UnlearnConfig
from .registry import Registry
from .tasks import ClassLogits, Objective, Task


def gradient_ascent_loss(losses: torch.Tensor) -> torch.Tensor:
    """``-mean(losses)``: minimising it raises the forget set's NLL without bound."""
    return -losses.mean()


def npo_loss(losses: torch.Tensor, reference_losses: torch.Tensor, beta: float) -> torch.Tensor:
    """Negative preference optimisation on ``(B,)`` per-sample NLLs against the reference's."""
    return (2.0 / beta) * F.softplus(beta * (reference_losses - losses)).mean()


def kl_to_reference(logits: torch.Tensor, reference_logits: torch.Tensor) -> torch.Tensor:
    """``KL(p_ref || p)`` over the class axis (dim 1), averaged over samples and positions."""
    kl = F.kl_div(F.log_softmax(logits, dim=1), F.log_softmax(reference_logits, dim=1),
                  reduction="none", log_target=True)
    return kl.sum(dim=1).mean()


class SiteObjective:
    """One site unlearning objective: the loss the withdrawing site minimises on its data
    (:meth:`forget`) and, if :attr:`retains`, the loss the remaining sites minimise on theirs in
    the same round (:meth:`retain`). A user's objective subclasses it and joins
    :data:`SITE_OBJECTIVES` (docs/unlearning.md, "Adding a method").

    Parameters
    ----------
    task : ClassLogits
        Gives the per-sample NLL and logits.
    reference : nn.Module
        The model before withdrawal (frozen).
    config : UnlearnConfig
        The round's settings (``beta``).
    """

    #: The remaining sites run :meth:`retain` (the server sends them the retain part).
    retains: ClassVar[bool] = False

    def __init__(self, task: ClassLogits, reference: nn.Module, config: UnlearnConfig) -> None:
        self.task, self.reference, self.config = task, reference, config

    def forget(self, model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        """The withdrawing site's loss on a batch of its training split."""
        raise NotImplementedError

    def retain(self, model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        """A remaining site's loss on a batch of its training split (objectives that :attr:`retains`)."""
        raise NotImplementedError

    def loss(self, role: str) -> Objective:
        """The loss of ``role``: ``forget`` or ``retain``."""
        if role == "forget":
            return self.forget
        if role == "retain" and self.retains:
            return self.retain
        raise ValueError(f"unlearning method {self.config.method!r} has no {role} objective")


class GradientAscent(SiteObjective):
    """``ga``: forget ``-mean NLL``."""

    def forget(self, model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        return gradient_ascent_loss(self.task.per_sample_loss(model, batch))


class GradientDifference(GradientAscent):
    """``graddiff``: forget ``-mean NLL``, retain ``mean NLL``."""

    retains = True

    def retain(self, model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        return self.task.per_sample_loss(model, batch).mean()


class KLRetain(GradientAscent):
    """``kl``: forget ``-mean NLL``, retain ``KL(p_ref || p)``."""

    retains = True

    def retain(self, model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            reference_logits = self.task.logits(self.reference, batch)
        return kl_to_reference(self.task.logits(model, batch), reference_logits)


class NPO(SiteObjective):
    """``npo``: forget ``(2 / beta) mean softplus(beta (NLL_ref - NLL))``."""

    def forget(self, model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            reference_losses = self.task.per_sample_loss(self.reference, batch)
        return npo_loss(self.task.per_sample_loss(model, batch), reference_losses, self.config.beta)


#: The site unlearning objectives by name (``unlearning.objective``; :class:`UnlearnConfig`'s ``method``).
SITE_OBJECTIVES: Registry[type[SiteObjective]] = Registry("site unlearning objective", SiteObjective)
SITE_OBJECTIVES.register("ga", GradientAscent)
SITE_OBJECTIVES.register("graddiff", GradientDifference)
SITE_OBJECTIVES.register("kl", KLRetain)
SITE_OBJECTIVES.register("npo", NPO)


def unlearn(task: Task, model: nn.Module, reference: nn.Module, data: torch.utils.data.TensorDataset,
            config: UnlearnConfig, seed: int, privacy: PrivateTraining | None = None) -> dict[str, float]:
    """Run one site's part of an unlearning round on ``model`` in place.

    Parameters
    ----------
    task : Task
        Gives the per-sample NLL and logits.
    model, reference : nn.Module
        The model being unlearned and the model before withdrawal (frozen).
    data : TensorDataset
        The site's training split (the forget set at the withdrawing site, part of the retain
        set elsewhere).
    config : UnlearnConfig
        The method, the site's role and its steps, from the server.
    seed : int
        Seeds the batch order.
    privacy : PrivateTraining, optional
        Run the steps with DP-SGD, as the site trains (``privacy=dp``): they touch the site's
        data like training does, so its accountant records them.
    """
    reference.eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    objective = SITE_OBJECTIVES.get(config.method, "unlearning.objective")(task, reference, config).loss(config.role)
    with task.compute.placed(reference):  # the objective runs it on the batches, on the task's device
        return task.train(model, data, seed, TrainConfig(local_steps=config.local_steps, lr=config.lr),
                          privacy=privacy, objective=objective)
