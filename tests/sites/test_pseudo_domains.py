"""PGA's pseudo-domains (sites/pseudo_domains.py and their place in
sites/replay_objectives.py): the scanner signature by hand, one signature per domain, and the
generalizability objective they give a site with nothing replayed."""

import pytest
import torch
from conftest import pga_options
from helpers.scalar_model import Scalar, squared_error
from torch.utils.data import DataLoader, TensorDataset

from sites import pseudo_domains as module
from sites.alignment_meter import AlignmentMeter
from sites.protocol import MetricKey, ReplayOptions
from sites.pseudo_domains import pseudo_domains
from sites.replay_objectives import replay_objective


@pytest.fixture
def contrast_only(monkeypatch):
    """Signatures without bias field, blur (σ far below a pixel) or noise: gamma alone."""
    monkeypatch.setattr(module, "BIAS_COEFFICIENTS", (0.0, 0.0))
    monkeypatch.setattr(module, "BLUR_SIGMA", (1e-3, 1e-3))
    monkeypatch.setattr(module, "NOISE_STD", 0.0)


def _z_score(x: torch.Tensor) -> torch.Tensor:
    dims = tuple(range(2, x.ndim))
    return (x - x.mean(dim=dims, keepdim=True)) / x.std(dim=dims, keepdim=True, unbiased=False)


def test_a_contrast_only_signature_by_hand(contrast_only):
    # Each (image, channel) is rescaled to [0, 1], raised to the domain's gamma, z-scored.
    images = torch.rand(3, 2, 8, 8) * 5 - 1
    domain = pseudo_domains(TensorDataset(images, torch.arange(3)), count=1, seed=0)["pseudo-1"]
    gamma = domain.signature.gamma
    assert module.GAMMA[0] <= gamma <= module.GAMMA[1]
    low = images.amin(dim=(2, 3), keepdim=True)
    high = images.amax(dim=(2, 3), keepdim=True)
    expected = _z_score(((images - low) / (high - low)) ** gamma)
    acquired, labels = (torch.stack(parts) for parts in zip(*domain.__getitems__([0, 1, 2])))
    assert torch.allclose(acquired, expected, atol=1e-4)
    assert torch.equal(labels, torch.arange(3))


def test_every_image_of_a_domain_is_acquired_alike_and_domains_differ(contrast_only):
    image = torch.rand(1, 1, 16, 16)
    domains = pseudo_domains(TensorDataset(image.repeat(2, 1, 1, 1)), count=2, seed=3)
    first, second = (torch.stack([sample[0] for sample in domain.__getitems__([0, 1])]) for domain in domains.values())
    assert torch.equal(first[0], first[1]) and torch.equal(second[0], second[1])
    assert domains["pseudo-1"].signature.gamma != domains["pseudo-2"].signature.gamma
    assert not torch.allclose(first[0], second[0], atol=1e-3)


def test_a_full_signature_keeps_shapes_targets_and_the_z_score():
    volumes, grades = torch.randn(6, 4, 4, 8, 8), torch.tensor([0, 1, 0, 1, 1, 0])
    domain = pseudo_domains(TensorDataset(volumes, grades), count=1, seed=1)["pseudo-1"]
    batch_volumes, batch_grades = next(iter(DataLoader(domain, batch_size=6)))  # fetched by __getitems__
    assert batch_volumes.shape == volumes.shape and torch.equal(batch_grades, grades)
    assert torch.allclose(batch_volumes.mean(dim=(2, 3, 4)), torch.zeros(6, 4), atol=1e-4)
    assert torch.allclose(batch_volumes.std(dim=(2, 3, 4), unbiased=False), torch.ones(6, 4), atol=1e-3)
    assert not torch.allclose(batch_volumes, volumes, atol=0.1)


def test_the_same_seed_gives_the_same_domains():
    images = torch.rand(4, 1, 8, 8)
    a, b = (pseudo_domains(TensorDataset(images), count=2, seed=7)["pseudo-2"][1][0] for _ in range(2))
    assert torch.equal(a, b)


CURRENT = [torch.full((4, 1), 2.0), torch.full((4, 1), 1.0)]  # L(w) = (2w - 1)^2
PSEUDO = {"pseudo-1": TensorDataset(torch.full((4, 1), 3.0), torch.full((4, 1), 2.0))}  # L_P(w) = (3w - 2)^2


def _step(options: ReplayOptions, pseudo: dict) -> tuple[dict[str, float], float]:
    meter = AlignmentMeter(every=1)
    model = Scalar(1.0)
    replay_objective(squared_error, {}, options, seed=0, meter=meter, pseudo=pseudo)(model, CURRENT).backward()
    return meter.metrics(), model.w.grad.item()


def test_pseudo_domains_give_a_site_with_nothing_replayed_the_generalizability_objective():
    # The plain loss (∇ = 4 at w = 1) plus MLDG over {current, P}, as in the alignment meter's
    # arbitrary-only case: P held out, w' = 0.6, ∇L_P(w') = -1.2, step 4 + (4 - 1.2) = 6.8;
    # the current batch held out, w' = 0.4, ∇L(0.4) = -0.8, step 4 + (6 - 0.8) = 9.2.
    metrics, gradient = _step(pga_options(alpha=0.1, inner_step="sgd"), PSEUDO)
    assert (metrics[MetricKey.PGA_ALIGNMENT_SHARE], gradient) in (
        (pytest.approx(7.2 / 6.8), pytest.approx(6.8)), (pytest.approx(4.8 / 9.2), pytest.approx(9.2)))


@pytest.mark.parametrize("options, pseudo", [
    (pga_options(alpha=0.1, inner_step="sgd"), {}),  # the ablation: no pseudo-domains
    # they join the generalizability objective only
    (pga_options(alpha=0.1, arbitrary=False, inner_step="sgd"), PSEUDO),
    (ReplayOptions("mix"), PSEUDO),  # experience replay has no meta-objective
])
def test_without_the_generalizability_objective_a_lone_site_trains_on_its_loss(options, pseudo):
    metrics, gradient = _step(options, pseudo)
    assert gradient == pytest.approx(4.0) and metrics == {}
