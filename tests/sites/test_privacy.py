"""DP-SGD at a site: config checks, the noise for a target epsilon, an accountant that spans the
run, and private local training for every task."""

import json

import pytest
import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from sites.config import parse
from sites.errors import ConfigError
from sites.privacy import Privacy, PrivateTraining, SiteAccountant, noisy_mean_loss
from sites.protocol import TrainConfig
from sites.tasks import build_task

DP = {"method": "dp", "target_epsilon": 8.0, "noise_multiplier": None, "max_grad_norm": 1.0, "delta": 1e-5}


def _privacy(config: dict):
    return parse(Privacy, config, "privacy")


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"method": "secure"}, "privacy.method"),
        ({"delta": 1.0}, "privacy.delta"),
        ({"delta": 0.0}, "privacy.delta"),
        ({"max_grad_norm": 0.0}, "privacy.max_grad_norm"),
        ({"target_epsilon": None, "noise_multiplier": -1.0}, "privacy.noise_multiplier"),
        ({"target_epsilon": -2.0}, "privacy.target_epsilon"),
        ({"noise_multiplier": 1.0}, "privacy.noise_multiplier"),  # both set
        ({"target_epsilon": None}, "privacy.noise_multiplier"),  # neither set
    ],
)
def test_bad_privacy_config_names_its_key(changes, key):
    with pytest.raises(ConfigError) as raised:
        _privacy({**DP, **changes})
    assert raised.value.key == key


def test_privacy_off_is_no_config():
    assert _privacy({"method": "off"}) is None


def test_the_noise_for_a_target_is_opacus_s_and_an_unreachable_target_is_refused():
    config = _privacy(DP)
    assert config.noise_for(0.1, 250) == pytest.approx(
        get_noise_multiplier(target_epsilon=8.0, target_delta=1e-5, sample_rate=0.1, steps=250, accountant="rdp"))
    assert _privacy({**DP, "target_epsilon": None, "noise_multiplier": 1.3}).noise_for(0.1, 250) == 1.3
    with pytest.raises(ConfigError, match="cannot be reached in 2 steps at sampling rate 0.5 .* even noise") as raised:
        _privacy({**DP, "target_epsilon": 1e-7}).noise_for(0.5, 2)
    assert raised.value.key == "privacy.target_epsilon"


def test_an_accountant_rebuilt_from_its_json_composes_like_one_opacus_accountant():
    site = SiteAccountant()
    assert site.epsilon(1e-5) == 0.0
    site.accountant.history.append((1.1, 0.1, 50))
    resumed = SiteAccountant(site.to_json())
    resumed.accountant.history.append((1.1, 0.1, 50))
    direct = RDPAccountant()
    direct.history = [(1.1, 0.1, 100)]
    assert resumed.steps == 100
    assert resumed.epsilon(1e-5) == pytest.approx(direct.get_epsilon(1e-5))
    assert resumed.epsilon(1e-5) > site.epsilon(1e-5)


def _train_privately(task, data, seed=0, config=None, accountant=None):
    torch.manual_seed(0)
    model = task.build_model()
    accountant = accountant or SiteAccountant()
    task.train(model, data.train, seed, config or TrainConfig(), PrivateTraining(1.0, 1.0, accountant))
    return model, accountant


def test_private_training_is_reproducible_and_charges_the_accountant(small_task, scenario):
    data = small_task.load_site(scenario.sites[0], seed=0)
    first, accountant = _train_privately(small_task, data)
    second, _ = _train_privately(small_task, data)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert accountant.accountant.history == [(1.0, small_task.batch_size / len(data.train), small_task.local_steps)]
    assert all(p.requires_grad for p in first.parameters())  # Opacus's freezing and hooks are undone
    assert not any(hasattr(p, "grad_sample") for p in first.parameters())


def test_private_training_differs_from_plain_training(small_task, scenario):
    data = small_task.load_site(scenario.sites[0], seed=0)
    private, _ = _train_privately(small_task, data)
    torch.manual_seed(0)
    plain = small_task.build_model()
    small_task.train(plain, data.train, 0, TrainConfig())
    assert any(not torch.equal(a, b) for a, b in zip(private.state_dict().values(), plain.state_dict().values()))


def test_a_phase_trains_privately_only_the_part_its_loss_touches(small_debiasing_config, scenario):
    task = build_task({**small_debiasing_config, "method": "pbbl"})
    data = task.load_site(scenario.sites[0], seed=0)
    torch.manual_seed(0)
    initial = task.build_model().state_dict()
    model, accountant = _train_privately(task, data, config=TrainConfig(phase="bias-0"))
    for name, value in model.state_dict().items():
        assert torch.equal(value, initial[name]) == name.startswith("main."), name
    assert accountant.steps == task.local_steps


def test_private_training_refuses_a_proximal_term(small_task, scenario):
    data = small_task.load_site(scenario.sites[0], seed=0)
    with pytest.raises(ValueError, match="proximal"):
        _train_privately(small_task, data, config=TrainConfig(proximal_mu=0.1))


@pytest.mark.parametrize("guidance", ["logit", "feature"])
def test_private_training_works_for_the_grading_networks(small_grading_config, scenario, guidance):
    task = build_task({**small_grading_config, "guidance": guidance})
    data = task.load_site(scenario.sites[0], seed=0)
    guided = TrainConfig(phase="guided", entries={"primary-modality": "t2"})
    model, accountant = _train_privately(task, data, config=guided)
    assert accountant.steps == task.phase_steps("guided")


def test_a_network_opacus_cannot_handle_is_refused_with_the_reason():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.LazyLinear(2))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 1, 6, 6)), batch_size=4)
    private = PrivateTraining(1.0, 1.0, SiteAccountant())
    with pytest.raises(ValueError, match="BatchNorm"):
        private.wrap(model, loader, 0, lambda params: torch.optim.Adam(params),
                     lambda m: m(torch.randn(4, 1, 6, 6)).sum())


def test_a_noised_mean_loss_is_the_gaussian_mechanism_on_the_clipped_sum_and_is_charged():
    site = SiteAccountant(json.dumps([[1.0, 0.5, 5]]))
    value = noisy_mean_loss(torch.tensor([0.5, 3.0, 1.0]), clip=2.0, noise_multiplier=1.5, accountant=site, seed=7)
    z = torch.randn((), generator=torch.Generator().manual_seed(7), dtype=torch.float64).item()
    assert value == pytest.approx((0.5 + 2.0 + 1.0 + 1.5 * 2.0 * z) / 3)  # 3.0 clipped to 2.0
    assert site.steps == 5 and json.loads(site.to_json()) == [[1.0, 0.5, 5], [1.5, 1.0, 1, "train_loss"]]
    composed = RDPAccountant()
    composed.history = [(1.0, 0.5, 5), (1.5, 1.0, 1)]  # one unsampled Gaussian mechanism after DP-SGD
    assert site.epsilon(1e-5) == pytest.approx(composed.get_epsilon(1e-5))
    assert SiteAccountant(site.to_json()).epsilon(1e-5) == site.epsilon(1e-5) > _epsilon_of([(1.0, 0.5, 5)])


def _epsilon_of(history):
    accountant = RDPAccountant()
    accountant.history = history
    return accountant.get_epsilon(1e-5)


@pytest.mark.parametrize(("mode", "keys"), [("withhold", {"num-examples"}), ("noise", {"num-examples", "train_loss"}),
                                            ("release", {"num-examples", "train_loss", "other"})])
def test_train_metrics_release_only_what_the_mode_says(mode, keys):
    config = _privacy({**DP, "train_metrics": mode})
    site = SiteAccountant()
    released = config.released_metrics({"num-examples": 4, "train_loss": 0.7, "other": 1.0},
                                       lambda: torch.full((4,), 0.5), site, seed=0)
    assert set(released) == keys
    assert len(site.releases) == (mode == "noise")
    if mode == "noise":  # 20 x 2 / 4 = std 10 around 0.5
        assert released["train_loss"] != 0.5


def test_train_metrics_must_be_a_known_mode():
    with pytest.raises(ConfigError) as raised:
        _privacy({**DP, "train_metrics": "blur"})
    assert raised.value.key == "privacy.train_metrics"
