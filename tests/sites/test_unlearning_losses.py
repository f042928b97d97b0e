"""The site-side unlearning objectives (sites/unlearning.py): values and gradients by hand,
what each does to a small segmentation model, and each run as DP-SGD."""

import copy
import json
import math

import pytest
import torch

from sites.errors import ConfigError
from sites.privacy import PrivateTraining, SiteAccountant
from sites.protocol import TrainConfig, UnlearnConfig
from sites.unlearning import SITE_OBJECTIVES, gradient_ascent_loss, kl_to_reference, npo_loss, unlearn


def test_gradient_ascent_is_the_negative_mean_nll():
    losses = torch.tensor([1.0, 3.0], requires_grad=True)
    loss = gradient_ascent_loss(losses)
    loss.backward()
    assert loss.item() == pytest.approx(-2.0)
    assert losses.grad.tolist() == pytest.approx([-0.5, -0.5])


def test_npo_by_hand():
    # (2 / beta) softplus(beta (NLL_ref - NLL)) with NLL 1, NLL_ref 1.5, beta 2: softplus(1) = log(1 + e)
    losses = torch.tensor([1.0], requires_grad=True)
    loss = npo_loss(losses, torch.tensor([1.5]), beta=2.0)
    loss.backward()
    assert loss.item() == pytest.approx(math.log(1 + math.e))
    # d/dNLL = -2 sigmoid(beta (NLL_ref - NLL)) = -2 sigmoid(1): minimising raises the forget NLL
    assert losses.grad.item() == pytest.approx(-2 / (1 + math.exp(-1)))


def test_npo_starts_at_2_log_2_over_beta_and_is_bounded_below():
    same = torch.tensor([0.7, 1.2])
    assert npo_loss(same, same, beta=0.5).item() == pytest.approx(2 * math.log(2) / 0.5)
    assert 0 < npo_loss(torch.tensor([50.0]), torch.tensor([1.0]), beta=1.0).item() < 1e-12


def test_kl_to_reference_by_hand():
    # p_ref = (1/2, 1/2), p = (3/4, 1/4): KL(p_ref || p) = 1/2 log(2/3) + 1/2 log 2
    logits = torch.tensor([[math.log(3.0), 0.0]])
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert kl_to_reference(logits, torch.zeros(1, 2)).item() == pytest.approx(expected)
    dense = torch.randn(2, 2, 4, 4)
    assert kl_to_reference(dense, dense).item() == pytest.approx(0.0, abs=1e-6)


def _objective(task, method: str, role: str, reference):
    """``method``'s loss in ``role``, as :func:`unlearn` builds it."""
    config = UnlearnConfig(method, role, local_steps=1, lr=1e-3)
    return SITE_OBJECTIVES.get(method, "unlearning.objective")(task, reference, config).loss(role)


def test_methods_without_a_part_are_refused(small_task):
    model = small_task.build_model()
    with pytest.raises(ValueError, match="npo.*retain"):
        _objective(small_task, "npo", "retain", model)
    with pytest.raises(ValueError, match="ga.*retain"):
        _objective(small_task, "ga", "retain", model)


def _mean_nll(task, model, data) -> float:
    return task.sample_losses(model, data).mean().item()


@pytest.fixture
def trained(small_task):
    """A segmentation model trained a little on site A's data, and that data."""
    from sites.spec import SiteSpec
    data = small_task.site_data(SiteSpec(id="A", name="a", index=0), seed=0).train
    torch.manual_seed(0)
    model = small_task.build_model()
    small_task.train(model, data, seed=0, config=TrainConfig(local_steps=10))
    return model, data


@pytest.mark.parametrize("method", ["ga", "npo"])  # graddiff and kl forget with ga's objective
def test_the_forget_part_raises_the_forget_nll(small_task, trained, method):
    model, data = trained
    before = _mean_nll(small_task, model, data)
    unlearned = copy.deepcopy(model)
    unlearn(small_task, unlearned, copy.deepcopy(model), data,
            UnlearnConfig(method, "forget", local_steps=5, lr=1e-3, beta=1.0), seed=1)
    assert _mean_nll(small_task, unlearned, data) > before + 0.01


def test_the_graddiff_retain_part_lowers_the_retain_nll(small_task, trained):
    model, data = trained
    before = _mean_nll(small_task, model, data)
    unlearn(small_task, model, copy.deepcopy(model), data,
            UnlearnConfig("graddiff", "retain", local_steps=5, lr=1e-3), seed=1)
    assert _mean_nll(small_task, model, data) < before


def test_the_kl_retain_part_starts_at_zero_and_pulls_back_to_the_reference(small_task, trained):
    model, data = trained
    reference = copy.deepcopy(model).eval()
    objective = _objective(small_task, "kl", "retain", reference)
    batch = list(data.tensors)
    assert objective(copy.deepcopy(model).eval(), batch).item() == pytest.approx(0.0, abs=1e-6)
    drifted = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in drifted.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    drifted.eval()
    start = objective(drifted, batch).item()
    unlearn(small_task, drifted, reference, data, UnlearnConfig("kl", "retain", local_steps=5, lr=1e-3), seed=1)
    drifted.eval()
    assert objective(drifted, batch).item() < start


def test_the_nll_is_the_pixel_averaged_cross_entropy_of_each_slice(small_task):
    class Constant(torch.nn.Module):
        """Logits (log 3, 0) at every pixel: p(background) = 3/4, p(organ) = 1/4."""

        def forward(self, images):
            logits = torch.zeros(len(images), 2, *images.shape[2:])
            logits[:, 0] = math.log(3.0)
            return logits

    images = torch.zeros(2, 1, 2, 2)
    masks = torch.tensor([[[[0, 0], [0, 0]]], [[[1, 1], [0, 0]]]])
    nll = small_task.per_sample_loss(Constant(), [images, masks])
    # slice 1: all background, -log 3/4; slice 2: half organ, (-log 3/4 - log 1/4) / 2
    assert nll.tolist() == pytest.approx([-math.log(0.75), -(math.log(0.75) + math.log(0.25)) / 2])
    assert small_task.sample_losses(Constant(), torch.utils.data.TensorDataset(images, masks)).tolist() == \
        pytest.approx(nll.tolist())


@pytest.mark.parametrize(("method", "role"), [("ga", "forget"), ("npo", "forget"), ("kl", "retain")])
def test_with_dp_each_part_is_dp_sgd_charged_to_the_sites_accountant(small_task, trained, method, role):
    model, data = trained
    config = UnlearnConfig(method, role, local_steps=4, lr=1e-3)

    def private_unlearning(accountant):
        unlearned = copy.deepcopy(model)
        unlearn(small_task, unlearned, copy.deepcopy(model), data, config, seed=1,
                privacy=PrivateTraining(1.0, 1.0, accountant))
        return unlearned

    accountant = SiteAccountant(json.dumps([[1.0, 0.5, 6]]))  # six training steps before
    private = private_unlearning(accountant)
    # Opacus merges equal steps: the four unlearning steps join the six, at rate batch / n = 8 / 16
    assert accountant.accountant.history == [(1.0, 0.5, 10)]
    repeated = private_unlearning(SiteAccountant())
    plain = copy.deepcopy(model)
    unlearn(small_task, plain, copy.deepcopy(model), data, config, seed=1)
    for name, value in private.state_dict().items():
        torch.testing.assert_close(value, repeated.state_dict()[name], msg=name)  # seeded noise and sampling
    assert any(not torch.equal(a, b) for a, b in zip(private.state_dict().values(), plain.state_dict().values()))


def _mean_entropy(task, model, data) -> float:
    with torch.no_grad():
        p = torch.softmax(task.logits(model.eval(), list(data.tensors)), dim=1)
    return float(-(p * p.clamp_min(1e-12).log()).sum(dim=1).mean())


def test_a_users_objective_joins_by_its_import_path_or_a_registered_name(small_task, trained, plugins):
    from my_site_objective import FlattenPredictions

    model, data = trained
    path = "my_site_objective.FlattenPredictions"
    assert SITE_OBJECTIVES.get(path, "unlearning.objective") is FlattenPredictions
    SITE_OBJECTIVES.register("flatten_for_test", FlattenPredictions)
    assert SITE_OBJECTIVES.get("flatten_for_test", "unlearning.objective") is FlattenPredictions
    for method in (path, "flatten_for_test"):
        unlearned = copy.deepcopy(model)
        unlearn(small_task, unlearned, copy.deepcopy(model), data, UnlearnConfig(method, "forget", 5, 1e-3), seed=1)
        assert _mean_entropy(small_task, unlearned, data) > _mean_entropy(small_task, model, data) + 0.01


@pytest.mark.parametrize(("name", "problem"), [
    ("forget_everything", "must be one of 'ga', 'graddiff', 'kl', 'npo'"),
    ("my_site_objective.Missing", "cannot import 'my_site_objective.Missing'"),
    ("torch.nn.Linear", "(got 'torch.nn.Linear', which is not one)"),
])
def test_an_unknown_objective_is_refused_naming_its_key(name, problem, plugins):
    with pytest.raises(ConfigError) as raised:
        SITE_OBJECTIVES.get(name, "unlearning.objective")
    assert raised.value.key == "unlearning.objective" and problem in raised.value.problem
