"""GCE and the bias-balanced softmax against hand-computed values and autograd."""

import math

import pytest
import torch
import torch.nn.functional as F

from sites.losses import balanced_softmax_cross_entropy, generalized_cross_entropy


def test_gce_value():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p = [0.25, 0.75]
    q = 0.7
    assert generalized_cross_entropy(logits, torch.tensor([1]), q).item() == pytest.approx((1 - 0.75**q) / q)
    assert generalized_cross_entropy(logits, torch.tensor([0]), q).item() == pytest.approx((1 - 0.25**q) / q)


def test_gce_gradient_is_cross_entropy_gradient_weighted_by_p_y_to_the_q():
    torch.manual_seed(0)
    logits = torch.randn(5, 2, requires_grad=True)
    targets = torch.tensor([0, 1, 1, 0, 1])
    q = 0.7
    (gce_grad,) = torch.autograd.grad(generalized_cross_entropy(logits, targets, q) * 5, logits)
    p_y = F.softmax(logits, dim=1).gather(1, targets[:, None])
    (ce_grad,) = torch.autograd.grad(F.cross_entropy(logits, targets, reduction="sum"), logits)
    assert torch.allclose(gce_grad, p_y**q * ce_grad, atol=1e-6)


def test_balanced_softmax_hand_computed():
    # Equal logits; prior for group 1 is p(y|b=1) = [0.2, 0.8], for group 0 it is [0.9, 0.1].
    log_prior = torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8]]))
    logits = torch.zeros(2, 2)
    loss = balanced_softmax_cross_entropy(logits, torch.tensor([0, 0]), torch.tensor([1, 0]), log_prior)
    # sample 1: -log 0.2; sample 2: -log 0.9
    assert loss.item() == pytest.approx((-math.log(0.2) - math.log(0.9)) / 2)


def test_balanced_softmax_with_a_uniform_prior_is_cross_entropy():
    torch.manual_seed(1)
    logits, targets = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 1, 0])
    uniform = torch.log(torch.full((2, 2), 0.5))
    assert balanced_softmax_cross_entropy(logits, targets, torch.zeros(6, dtype=torch.long), uniform).item() == \
        pytest.approx(F.cross_entropy(logits, targets).item())
