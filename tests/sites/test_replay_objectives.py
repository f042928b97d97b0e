"""PGA's meta-objectives (sites/replay_objectives.py): the first-order step against a
hand-computed case, the second-order option against autograd, and which domains each ablation
trains on."""

import pytest
import torch
from conftest import pga_options
from helpers.scalar_model import Scalar, squared_error
from torch import nn
from torch.utils.data import TensorDataset

from sites.protocol import ReplayOptions, TrainConfig
from sites.replay_objectives import meta_loss, replay_objective


def test_first_order_meta_gradient_by_hand():
    # L_A(w) = (2w - 1)^2, L_A' = 4(2w - 1); L_B(w) = (3w - 2)^2, L_B' = 6(3w - 2).
    # w = 1, alpha = 0.1: L_A'(1) = 4, w' = 1 - 0.4 = 0.6, L_B'(0.6) = 6 (1.8 - 2) = -1.2.
    # First order: d/dw = L_A'(w) + L_B'(w') = 4 - 1.2 = 2.8; loss = 1 + (1.8 - 2)^2 = 1.04.
    model = Scalar(1.0)
    a = [torch.tensor([2.0]), torch.tensor([1.0])]
    b = [torch.tensor([3.0]), torch.tensor([2.0])]
    loss = meta_loss(model, squared_error, a, b, alpha=0.1)
    loss.backward()
    assert loss.item() == pytest.approx(1.04)
    assert model.w.grad.item() == pytest.approx(2.8)


def test_second_order_meta_gradient_by_hand():
    # The same case keeps (1 - alpha L_A'') L_B'(w') with L_A'' = 8: 4 + (1 - 0.8)(-1.2) = 3.76.
    model = Scalar(1.0)
    a = [torch.tensor([2.0]), torch.tensor([1.0])]
    b = [torch.tensor([3.0]), torch.tensor([2.0])]
    meta_loss(model, squared_error, a, b, alpha=0.1, second_order=True).backward()
    assert model.w.grad.item() == pytest.approx(3.76)


def test_normalized_inner_step_by_hand():
    # ∇L_A(1) = 4 has RMS 4: w' = 1 - 0.1 * 4 / 4 = 0.9, ∇L_B(0.9) = 6 (2.7 - 2) = 4.2.
    # First order: d/dw = 4 + 4.2 = 8.2; loss = 1 + (2.7 - 2)^2 = 1.49.
    model = Scalar(1.0)
    a = [torch.tensor([2.0]), torch.tensor([1.0])]
    b = [torch.tensor([3.0]), torch.tensor([2.0])]
    loss = meta_loss(model, squared_error, a, b, alpha=0.1, inner_step="normalized")
    loss.backward()
    assert loss.item() == pytest.approx(1.49)
    assert model.w.grad.item() == pytest.approx(8.2)


def test_normalized_inner_step_does_not_depend_on_the_loss_scale():
    # θ' moves by α in RMS whatever the gradient's size: a loss scaled by 100 gives 100 times
    # the same meta-loss; the plain SGD inner step moves 100 times further instead.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    a = [torch.randn(5, 3), torch.randint(0, 2, (5,))]
    b = [torch.randn(6, 3), torch.randint(0, 2, (6,))]

    def scaled(factor):
        return lambda network, batch: factor * nn.functional.cross_entropy(network(batch[0]), batch[1])

    for inner_step, same in (("normalized", True), ("sgd", False)):
        plain = meta_loss(model, scaled(1.0), a, b, alpha=0.05, inner_step=inner_step)
        large = meta_loss(model, scaled(100.0), a, b, alpha=0.05, inner_step=inner_step)
        assert torch.isclose(large / 100, plain).item() is same, inner_step


def test_second_order_matches_autograd_through_the_inner_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    a = [torch.randn(5, 3), torch.randint(0, 2, (5,))]
    b = [torch.randn(6, 3), torch.randint(0, 2, (6,))]

    def loss(network, batch):
        return nn.functional.cross_entropy(network(batch[0]), batch[1])

    names = [name for name, _ in model.named_parameters()]

    def reference(*params):  # L_A(θ) + L_B(θ - α ∇L_A(θ)) written directly with torch.func
        state = dict(zip(names, params))
        loss_a = loss(lambda x: torch.func.functional_call(model, state, (x,)), a)
        grads = torch.autograd.grad(loss_a, params, create_graph=True)
        adapted = {n: p - 0.5 * g for n, p, g in zip(names, params, grads)}
        return loss_a + loss(lambda x: torch.func.functional_call(model, adapted, (x,)), b)

    params = tuple(p.detach().clone().requires_grad_() for p in model.parameters())
    expected = torch.autograd.grad(reference(*params), params)
    meta_loss(model, loss, a, b, alpha=0.5, second_order=True).backward()
    for p, g in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, g)
    model.zero_grad()
    meta_loss(model, loss, a, b, alpha=0.5).backward()
    first_order = [p.grad for p in model.parameters()]
    assert any(not torch.allclose(f, g) for f, g in zip(first_order, expected))  # the Hessian term matters here


class _PartlyUsed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        self.unused = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_first_order_matches_autograd_with_the_inner_gradient_held_constant():
    # The step does not backpropagate through L_A a second time (its gradient is reused): the
    # gradient must still be ∇L_A(θ) + ∇L_B(θ'), and zero for a parameter the loss leaves unused.
    torch.manual_seed(0)
    model = _PartlyUsed()
    a = [torch.randn(5, 3), torch.randint(0, 2, (5,))]
    b = [torch.randn(6, 3), torch.randint(0, 2, (6,))]

    def loss(network, batch):
        return nn.functional.cross_entropy(network(batch[0]), batch[1])

    names = [name for name, _ in model.net.named_parameters()]
    grad_a = torch.autograd.grad(loss(model, a), list(model.net.parameters()))
    shifted = {name: (p.detach() - 0.5 * g).requires_grad_()
               for name, p, g in zip(names, model.net.parameters(), grad_a)}
    loss_b = loss(lambda x: torch.func.functional_call(model.net, shifted, (x,)), b)
    expected = [ga + gb for ga, gb in zip(grad_a, torch.autograd.grad(loss_b, list(shifted.values())))]

    meta = meta_loss(model, loss, a, b, alpha=0.5)
    meta.backward()
    for p, g in zip(model.net.parameters(), expected):
        torch.testing.assert_close(p.grad, g)
    assert model.unused.weight.grad is None or not model.unused.weight.grad.any()
    assert meta.item() == pytest.approx(loss(model, a).item() + loss_b.item())


def _domain(value: float, n: int = 8) -> TensorDataset:
    return TensorDataset(torch.full((n, 1), value), torch.zeros(n))


class Recorder:
    """A loss that records which domains (encoded in the inputs) each call saw."""

    def __init__(self) -> None:
        self.calls: list[set[float]] = []

    def __call__(self, model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        self.calls.append(set(batch[0].flatten().tolist()))
        return squared_error(model, batch)


def _run(options: ReplayOptions, replay: dict, steps: int = 6) -> list[set[float]]:
    recorder = Recorder()
    objective = replay_objective(recorder, replay, options, seed=0)
    model = Scalar(0.5)
    current = [torch.full((4, 1), 1.0), torch.zeros(4)]
    for _ in range(steps):
        objective(model, current).backward()
    return recorder.calls


REPLAY = {"A": _domain(2.0), "B": _domain(3.0)}


def test_no_replay_is_the_plain_loss():
    assert _run(pga_options(), {}) == [{1.0}] * 6


def test_mix_trains_on_current_and_every_replayed_site_together():
    assert _run(ReplayOptions(objective="mix"), REPLAY) == [{1.0, 2.0, 3.0}] * 6


def test_orientational_only_aligns_current_with_replay():
    calls = _run(pga_options(orientational=True, arbitrary=False), REPLAY)
    assert calls == [{1.0}, {2.0, 3.0}] * 6  # L_A on the current batch, L_B on replay


def test_arbitrary_only_splits_the_domains_afresh_each_step():
    calls = _run(pga_options(orientational=False, arbitrary=True), REPLAY, steps=12)
    plain, meta_train, meta_test = calls[0::3], calls[1::3], calls[2::3]
    assert plain == [{1.0}] * 12
    held_out = []
    for train, test in zip(meta_train, meta_test):
        assert len(test) == 1 and not test & train and train | test == {1.0, 2.0, 3.0}
        held_out.append(next(iter(test)))
    assert len(set(held_out)) == 3  # every domain is meta-test at some step


def test_full_pga_uses_both_objectives():
    calls = _run(pga_options(), REPLAY, steps=1)
    assert calls[:2] == [{1.0}, {2.0, 3.0}] and len(calls) == 4


def test_weight_scales_the_generalizability_objective():
    model = Scalar(0.5)
    current = [torch.full((4, 1), 1.0), torch.zeros(4)]
    values = [replay_objective(squared_error, REPLAY, pga_options(orientational=False, weight=w), seed=0)(
        model, current).item() for w in (0.0, 1.0, 2.0)]
    assert values[0] < values[1] < values[2]
    assert values[2] - values[0] == pytest.approx(2 * (values[1] - values[0]))


def test_options_come_from_the_training_config():
    config = TrainConfig.from_record({"stage": 2, "server-round": 1, "replay-objective": "pga", "pga-alpha": 0.01,
                                      "pga-weight": 0.5, "pga-orientational": False, "pga-arbitrary": True,
                                      "pga-second-order": True, "pga-inner-step": "normalized"})
    # an entry the record lacks is None (PGA sends them all; experience replay none)
    assert config.replay == ReplayOptions("pga", 0.01, 0.5, False, True, True, "normalized", pseudo_domains=None)
    assert TrainConfig.from_record({"replay-objective": "mix"}).replay == ReplayOptions("mix")
    assert TrainConfig.from_record({"stage": 2}).replay is None
