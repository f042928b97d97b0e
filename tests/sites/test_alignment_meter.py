"""PGA's alignment measurement (sites/alignment_meter.py): the cosine and the share against a
hand-computed case, the share's first-order scaling with α, and which steps are measured."""

import pytest
import torch
from conftest import pga_options
from helpers.scalar_model import Scalar, squared_error
from torch import nn
from torch.utils.data import TensorDataset

from sites.alignment_meter import AlignmentMeter
from sites.protocol import MetricKey, ReplayOptions
from sites.replay_objectives import replay_objective


def _one_step(options: ReplayOptions, replay_target: float = 2.0) -> tuple[dict[str, float], float]:
    """One measured step of ``Scalar(1)`` on the current batch ``L(w) = (2w - 1)^2`` with
    replay ``L_B(w) = (3w - replay_target)^2``: the meter's metrics and the step's gradient."""
    meter = AlignmentMeter(every=1)
    replay = {"B": TensorDataset(torch.full((4, 1), 3.0), torch.full((4, 1), replay_target))}
    model = Scalar(1.0)
    replay_objective(squared_error, replay, options, seed=0, meter=meter)(
        model, [torch.full((4, 1), 2.0), torch.full((4, 1), 1.0)]).backward()
    return meter.metrics(), model.w.grad.item()


def test_alignment_and_share_by_hand():
    # ∇L_A = 4(2w - 1) = 4 and ∇L_B = 6(3w - 2) = 6 at w = 1: the same sign, cosine 1. With
    # alpha = 0.1, w' = 0.6 and ∇L_B(w') = -1.2: alignment part -1.2 - 6 = -7.2, whole gradient
    # 4 - 1.2 = 2.8, share 7.2 / 2.8.
    metrics, gradient = _one_step(pga_options(alpha=0.1, arbitrary=False, inner_step="sgd"))
    assert gradient == pytest.approx(2.8)  # measuring leaves the step as it was
    assert metrics == pytest.approx({MetricKey.PGA_ALIGNMENT: 1.0, MetricKey.PGA_ALIGNMENT_SHARE: 7.2 / 2.8})


def test_arbitrary_only_counts_the_plain_loss_in_the_whole_step():
    # The plain loss (∇ = 4) is always in the step; the meta-objective's split is drawn.
    # B held out: w' = 1 - 0.1 * 4 = 0.6, part -1.2 - 6 = -7.2, whole 4 + (4 - 1.2) = 6.8.
    # The current batch held out: w' = 1 - 0.1 * 6 = 0.4, ∇L(0.4) = -0.8, part -0.8 - 4 = -4.8,
    # whole 4 + (6 - 0.8) = 9.2.
    metrics, gradient = _one_step(pga_options(alpha=0.1, orientational=False, inner_step="sgd"))
    assert (metrics[MetricKey.PGA_ALIGNMENT_SHARE], gradient) in (
        (pytest.approx(7.2 / 6.8), pytest.approx(6.8)), (pytest.approx(4.8 / 9.2), pytest.approx(9.2)))


def test_opposed_gradients_have_cosine_minus_one():
    # L_B(w) = (3w - 4)^2: ∇L_B(1) = -6 against ∇L_A = 4.
    metrics, _ = _one_step(pga_options(arbitrary=False), replay_target=4.0)
    assert metrics[MetricKey.PGA_ALIGNMENT] == pytest.approx(-1.0)


def _classifier(options: ReplayOptions, meter: AlignmentMeter | None):
    """A seeded two-layer classifier, its PGA objective with two replayed sites, and a current batch."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
    replay = {name: TensorDataset(torch.randn(16, 3) + shift, torch.randint(0, 2, (16,))) for name, shift in
              (("A", 1.0), ("B", -1.0))}
    objective = replay_objective(lambda network, batch: nn.functional.cross_entropy(network(batch[0]), batch[1]),
                                 replay, options, seed=0, meter=meter)
    return model, objective, [torch.randn(8, 3), torch.randint(0, 2, (8,))]


def test_measuring_leaves_the_training_as_it_was():
    def trained(meter):
        model, objective, current = _classifier(pga_options(alpha=0.01, inner_step="normalized"), meter)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(4):
            optimizer.zero_grad()
            objective(model, current).backward()
            optimizer.step()
        return list(model.parameters())

    measured = AlignmentMeter(every=1)
    for with_meter, without in zip(trained(measured), trained(None)):
        assert torch.equal(with_meter, without)
    assert len(measured.metrics()) == 2


def _share(alpha: float) -> float:
    meter = AlignmentMeter(every=1)
    model, objective, current = _classifier(pga_options(alpha=alpha), meter)
    objective(model, current)
    return meter.metrics()[MetricKey.PGA_ALIGNMENT_SHARE]


def test_share_grows_linearly_with_the_inner_step_while_it_is_small():
    # To first order the alignment part is -α ∇²L_B ∇L_A: ten times α, ten times the share.
    small, larger = _share(1e-4), _share(1e-3)
    assert 0 < small < 1e-2
    assert larger / small == pytest.approx(10, rel=0.05)


def test_every_kth_step_is_measured_from_the_first():
    meter = AlignmentMeter(every=3)
    assert [meter.due() for _ in range(7)] == [True, False, False, True, False, False, True]
    with pytest.raises(ValueError, match="k >= 1"):
        AlignmentMeter(every=0)


@pytest.mark.parametrize("options, replay", [
    (pga_options(), {}),  # no replay: the plain loss
    (ReplayOptions(objective="mix"), {"B": TensorDataset(torch.ones(4, 1), torch.ones(4, 1))}),
])
def test_nothing_is_reported_without_a_meta_objective(options, replay):
    meter = AlignmentMeter(every=1)
    objective = replay_objective(squared_error, replay, options, seed=0, meter=meter)
    objective(Scalar(1.0), [torch.ones(4, 1), torch.ones(4, 1)])
    assert meter.metrics() == {}
