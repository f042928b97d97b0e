"""Site-Modulated Diffusion's generator (sites/networks/site_diffusion.py, sites/diffusion.py):
shapes, prompt and class conditioning, training and reproducible sampling."""

import pytest
import torch

from sites.diffusion import guided_prediction, sample, train_generator
from sites.networks.site_diffusion import SiteDiffusion


def _network(num_classes: int = 0, channels: int = 1) -> SiteDiffusion:
    torch.manual_seed(0)
    return SiteDiffusion(2, channels, 8, num_classes, embed_dim=16, channels=(8, 16), heads=2)


def test_output_has_the_input_shape_and_depends_on_the_prompt():
    network = _network(channels=2)
    x, t = torch.randn(3, 2, 8, 8), torch.tensor([1, 500, 999])
    prompt_a, prompt_b = torch.randn(1, 4, 16).expand(3, -1, -1), torch.randn(1, 4, 16).expand(3, -1, -1)
    out_a, out_b = network(x, t, prompt_a), network(x, t, prompt_b)
    assert out_a.shape == x.shape
    assert not torch.allclose(out_a, out_b)


def test_a_volume_generator_keeps_the_volume_and_is_conditioned_like_an_image_one():
    torch.manual_seed(0)
    network = SiteDiffusion(3, 4, (4, 8, 8), num_classes=2, embed_dim=16, channels=(8, 16), heads=2)
    x, t = torch.randn(2, 4, 4, 8, 8), torch.tensor([3, 700])
    prompts, classes = torch.randn(2, 4, 16), torch.tensor([0, 1])
    # MONAI starts its output convolution at zero: a few steps make the prediction depend on anything
    train_generator(network, torch.nn.Parameter(prompts[0].clone()), x.clamp(-1, 1), classes, steps=5, batch_size=2,
                    lr=1e-2, seed=0)
    out = network(x, t, prompts, classes)
    assert network.sample_shape == (4, 4, 8, 8) and out.shape == x.shape
    assert not torch.allclose(out, network(x, t, torch.randn(2, 4, 16), classes))
    assert not torch.allclose(out, network(x, t, prompts, 1 - classes))
    samples = sample(network, prompts[0], classes, 2, sampling_steps=3, seed=0)
    assert samples.shape == (2, 4, 4, 8, 8) and samples.abs().max() <= 1


@pytest.mark.parametrize(("args", "message"), [
    ((3, 4, (5, 8, 8)), r"sample_size \(5, 8, 8\) must be divisible by 2"),
    ((4, 1, 8), "spatial_dims 2"),
])
def test_shapes_the_network_cannot_take_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        SiteDiffusion(*args, embed_dim=16, channels=(8, 16), heads=2)


def test_class_token_conditions_and_is_required():
    network = _network(num_classes=2)
    x, t, prompts = torch.randn(2, 1, 8, 8), torch.tensor([10, 10]), torch.randn(2, 4, 16)
    assert network.condition(prompts, torch.tensor([0, 1])).shape == (2, 5, 16)
    assert not torch.allclose(network(x, t, prompts, torch.tensor([0, 0])),
                              network(x, t, prompts, torch.tensor([1, 1])))
    with pytest.raises(ValueError, match="classes"):
        network(x, t, prompts)


def test_training_moves_the_network_and_the_sites_prompt():
    network = _network()
    before = [p.detach().clone() for p in network.parameters()]
    prompt = torch.nn.Parameter(torch.randn(4, 16))
    start = prompt.detach().clone()
    metrics = train_generator(network, prompt, torch.rand(16, 1, 8, 8) * 2 - 1, None, steps=3, batch_size=4,
                              lr=1e-2, seed=0)
    assert metrics["num-examples"] == 16 and metrics["generator-loss"] > 0
    assert not torch.equal(prompt.detach(), start)
    assert any(not torch.equal(b, p) for b, p in zip(before, network.parameters()))


def test_sampling_is_reproducible_and_bounded():
    network, prompt = _network(), torch.randn(4, 16)
    first, again = (sample(network, prompt, None, 5, sampling_steps=4, seed=3) for _ in range(2))
    other = sample(network, prompt, None, 5, sampling_steps=4, seed=4)
    assert first.shape == (5, 1, 8, 8) and first.abs().max() <= 1
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_each_prompt_generates_its_own_sites_look():
    """Two sites take turns training one generator, as they would across stages: a bright site
    and a dark one. With the other site's replay under its prompt in each turn, sampling with
    each site's prompt gives that site's intensity; without it, both prompts give the site
    that trained last (the reason SMD trains on replay)."""
    levels = {"bright": 0.6, "dark": -0.6}

    def take_turns(with_replay: bool) -> dict[str, float]:
        network = _network()
        generator = torch.Generator().manual_seed(0)
        prompts = {site: torch.nn.Parameter(torch.randn((4, 16), generator=generator)) for site in levels}
        for turn in range(2):
            for k, (site, level) in enumerate(levels.items()):
                images = (level + 0.1 * torch.randn((32, 1, 8, 8), generator=generator)).clamp(-1, 1)
                others = [other for other in levels if other != site and (turn or k)] if with_replay else []
                replay = [(sample(network, prompts[o].detach(), None, 32, 10, seed=turn), None, prompts[o].detach())
                          for o in others]
                train_generator(network, prompts[site], images, None, steps=80, batch_size=16, lr=3e-3,
                                seed=10 * turn + k, replay=replay)
        return {site: sample(network, prompts[site].detach(), None, 16, 20, seed=1).mean().item() for site in levels}

    kept = take_turns(with_replay=True)
    assert kept["bright"] > 0.4 and kept["dark"] < -0.4
    drifted = take_turns(with_replay=False)
    assert drifted["bright"] < 0 and drifted["dark"] < 0


def test_guidance_moves_the_site_free_prediction_by_its_scale():
    # w (site − site-free) + site-free, the site-free one under the all-zero prompt, the class kept.
    network = _network(num_classes=2).eval()
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([5, 300, 900])
    prompts, classes = torch.randn(3, 4, 16), torch.tensor([0, 1, 1])
    site, site_free = network(x, t, prompts, classes), network(x, t, torch.zeros_like(prompts), classes)
    assert torch.equal(guided_prediction(network, x, t, prompts, classes, 1.0), site)
    torch.testing.assert_close(guided_prediction(network, x, t, prompts, classes, 2.5),
                               site_free + 2.5 * (site - site_free))
    torch.testing.assert_close(guided_prediction(network, x, t, prompts, classes, 0.0), site_free)


def test_prompt_dropout_trains_a_site_free_model_that_guidance_steers_from():
    """A bright and a dark site train one generator together, 30 % of the samples under the
    null prompt, in three trajectories (training seeds). The site-free model draws site-like
    images (a mean intensity near one site's ±0.6, where the untrained null prompt of a
    generator trained without prompt dropout draws grey ones, mean |intensity| at most 0.12) of
    both sites; each prompt draws its own site, under guidance 2 as well.

    Which site one trajectory's site-free model draws more of tips as easily as a coin: its
    bright share ranged from 0.09 to 1.0 between seeds and between CPUs (whose floating-point
    kernels move a trajectory as far as another seed does). So both sites are asked of the
    three trajectories' draws together, and of each trajectory only what held in every one."""
    means = {key: [] for key in ("site-free", "bright", "dark", "bright guided", "dark guided")}
    for seed in range(3):
        network = _network()
        generator = torch.Generator().manual_seed(0)
        bright, dark = (torch.nn.Parameter(torch.randn((4, 16), generator=generator)) for _ in range(2))
        images = {level: (level + 0.1 * torch.randn((64, 1, 8, 8), generator=generator)).clamp(-1, 1)
                  for level in (0.6, -0.6)}
        train_generator(network, bright, images[0.6], None, steps=200, batch_size=16, lr=3e-3, seed=seed,
                        replay=[(images[-0.6], None, dark.detach())], prompt_dropout=0.3)
        draws = {"site-free": (torch.zeros(4, 16), 1.0), "bright": (bright, 1.0), "dark": (dark, 1.0),
                 "bright guided": (bright, 2.0), "dark guided": (dark, 2.0)}
        for key, (prompt, guidance) in draws.items():
            samples = sample(network, prompt.detach(), None, 32, 20, seed=1, guidance=guidance)
            means[key].append(samples.mean(dim=(1, 2, 3)))
    means = {key: torch.cat(values) for key, values in means.items()}
    site_free = means["site-free"]
    assert site_free.abs().mean() > 0.3  # 0.50 to 0.60 in every trajectory measured
    bright_draws = int((site_free > 0).sum())
    assert 3 <= bright_draws <= len(site_free) - 3  # each site at least 1 in 32 times
    for key, sign in (("bright", 1), ("bright guided", 1), ("dark", -1), ("dark guided", -1)):
        assert (sign * means[key] > 0).float().mean() > 0.9, key  # 1.0 in every trajectory measured
