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

NLL is the task's per-sample cross entropy (:meth:`~sites.tasks.capabilities.ClassLogits.per_sample_loss`).
NPO is the loss of Zhang et al. (2024), ``-(2/beta) log sigmoid(-beta log(p / p_ref))``; with
``log(p / p_ref) = NLL_ref - NLL`` that is ``(2/beta) softplus(beta (NLL_ref - NLL))``: it falls
towards 0 as the model's NLL on the forget set rises above the reference's, so unlike gradient
ascent it is bounded below. The sign is easy to invert: ``-(2/beta) log sigmoid(-beta (NLL - NLL_ref))``
has its minimum at a *lower* forget NLL, i.e. it would learn the forget set.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .privacy import PrivateTraining
from .protocol import TrainConfig, UnlearnConfig
from .tasks import Objective, Task

FORGET_METHODS = ("ga", "graddiff", "kl", "npo")
RETAIN_METHODS = ("graddiff", "kl")


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


def unlearning_objective(task: Task, method: str, role: str, reference: nn.Module, beta: float) -> Objective:
    """The loss a site minimises for ``method`` in ``role`` (``forget`` or ``retain``)."""
    if role == "forget" and method in FORGET_METHODS:
        if method != "npo":
            return lambda model, batch: gradient_ascent_loss(task.per_sample_loss(model, batch))

        def npo(model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
            with torch.no_grad():
                reference_losses = task.per_sample_loss(reference, batch)
            return npo_loss(task.per_sample_loss(model, batch), reference_losses, beta)

        return npo
    if role == "retain" and method == "graddiff":
        return lambda model, batch: task.per_sample_loss(model, batch).mean()
    if role == "retain" and method == "kl":

        def kl(model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
            with torch.no_grad():
                reference_logits = task.logits(reference, batch)
            return kl_to_reference(task.logits(model, batch), reference_logits)

        return kl
    raise ValueError(f"unlearning method {method!r} has no {role} objective")


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
    objective = unlearning_objective(task, config.method, config.role, reference, config.beta)
    with task.compute.placed(reference):  # the objective runs it on the batches, on the task's device
        return task.train(model, data, seed, TrainConfig(local_steps=config.local_steps, lr=config.lr),
                          privacy=privacy, objective=objective)
