"""Losses of the methods: cross-modality guidance (docs/design.md#grading) and debiasing (docs/design.md#pbbl)."""

import torch
import torch.nn.functional as F


def generalized_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, q: float) -> torch.Tensor:
    """Mean GCE ``(1 - p_y^q) / q`` over the batch.

    Its gradient is ``p_y^q`` times that of cross entropy, so samples the model already finds
    easy (the bias-aligned ones) weigh the most: the model captures the bias.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, C)`` unnormalised scores.
    targets : torch.Tensor
        ``(N,)`` class indices.
    q : float
        In (0, 1]; q -> 0 recovers cross entropy.
    """
    p_y = F.softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    return ((1 - p_y.clamp_min(1e-12) ** q) / q).mean()


def balanced_softmax_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor,
                                   log_prior: torch.Tensor) -> torch.Tensor:
    """Cross entropy of ``logits + log p(y | group)``: the bias-balanced softmax.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, C)`` scores of the debiased model (prediction uses them unadjusted).
    targets : torch.Tensor
        ``(N,)`` class indices.
    groups : torch.Tensor
        ``(N,)`` (pseudo) bias label of each sample.
    log_prior : torch.Tensor
        ``(G, C)`` with ``log p(y | group)`` in row ``group``.
    """
    return F.cross_entropy(logits + log_prior[groups], targets)


def cross_modality_guidance(branch_logits: torch.Tensor, primary: int, temperature: float) -> torch.Tensor:
    """Pull every secondary branch's prediction towards the primary branch's.

    Mean over the secondary branches ``m`` of ``T^2 KL(softmax(z_p / T) || softmax(z_m / T))``,
    averaged over the batch, with the gradient stopped on the primary: the primary teaches,
    the secondaries learn (``T^2`` keeps the gradient scale independent of ``T``).

    Parameters
    ----------
    branch_logits : torch.Tensor
        ``(N, M, C)`` logits of the ``M`` modality branches.
    primary : int
        Index of the primary branch.
    temperature : float
        ``T`` > 0; larger values soften both distributions.
    """
    teacher = F.softmax(branch_logits[:, primary].detach() / temperature, dim=1)
    secondary = [m for m in range(branch_logits.shape[1]) if m != primary]
    log_students = F.log_softmax(branch_logits[:, secondary] / temperature, dim=2)
    divergence = F.kl_div(log_students, teacher[:, None].expand_as(log_students), reduction="none").sum(dim=2)
    return temperature**2 * divergence.mean()


def feature_guidance(features: torch.Tensor, projected: torch.Tensor, primary: int) -> torch.Tensor:
    """Pull every secondary branch's projected pooled features towards the primary's features.

    Mean over the secondary branches ``m`` of the mean squared error between ``projected[:, m]``
    (branch ``m``'s features through its own learned projection) and ``features[:, primary]``,
    with the gradient stopped on the primary. The projection lets a secondary keep a feature
    space of its own and still be told what the primary sees.

    Parameters
    ----------
    features : torch.Tensor
        ``(N, M, F)`` pooled features of the ``M`` modality branches.
    projected : torch.Tensor
        ``(N, M, F)``: ``projected[:, m]`` is branch ``m``'s features through its projection
        (the primary's own entry is not used).
    primary : int
        Index of the primary branch.
    """
    secondary = [m for m in range(features.shape[1]) if m != primary]
    target = features[:, primary].detach()[:, None].expand(-1, len(secondary), -1)
    return F.mse_loss(projected[:, secondary], target)
