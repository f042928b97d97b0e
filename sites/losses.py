"""Losses of the debiasing methods (DESIGN.md §1.3)."""

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
