"""Training and sampling Site-Modulated Diffusion (docs/design.md#smd) with diffusers' schedulers.

A site trains the shared denoiser and its own prompt tokens on its data (DDPM with
v-prediction); the server samples from the denoiser with any site's prompt (DDIM). Samples live
in the task's replay space (:meth:`~sites.tasks.capabilities.ReplayCodec.encode_replay`):
``(N, C, *spatial)`` images or volumes in ``[-1, 1]``, labels included as channels or as the
class condition.
"""

import itertools
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler

from .device import Compute
from .networks.site_diffusion import SiteDiffusion
from .protocol import GeneratorConfig, MetricKey
from .tasks import ReplayCodec

TRAIN_TIMESTEPS = 1000


def build_generator(task: ReplayCodec, config: GeneratorConfig) -> SiteDiffusion:
    """The task's denoiser, 2D or 3D as its replay space, its architecture from ``config``
    (channels, prompt width, heads): the server and every site build the same one."""
    channels, *spatial = task.replay_shape
    return SiteDiffusion(len(spatial), channels, spatial, task.replay_classes, int(config.embed_dim),
                         [int(c) for c in config.channels], int(config.heads))


def _noise_schedule() -> DDPMScheduler:
    # The cosine schedule keeps more signal at mid noise levels than the linear one, which
    # matters for the small images and short training here; v-prediction learns a site's
    # intensity in far fewer steps than noise prediction (docs/continual.md).
    return DDPMScheduler(num_train_timesteps=TRAIN_TIMESTEPS, beta_schedule="squaredcos_cap_v2",
                         prediction_type="v_prediction")


def denoising_loss(network: SiteDiffusion, x: torch.Tensor, prompts: torch.Tensor, classes: torch.Tensor | None,
                   generator: torch.Generator, schedule: DDPMScheduler | None = None) -> torch.Tensor:
    """Mean squared error of the predicted velocity ``v`` (the schedule's
    :meth:`~diffusers.DDPMScheduler.get_velocity`) at uniformly drawn timesteps (DDPM)."""
    schedule = schedule or _noise_schedule()
    # drawn on the CPU generator and moved, so that any device trains on the same draws
    noise = torch.randn(x.shape, generator=generator).to(x.device)
    timesteps = torch.randint(0, TRAIN_TIMESTEPS, (len(x),), generator=generator).to(x.device)
    noisy = schedule.add_noise(x, noise, timesteps)
    return F.mse_loss(network(noisy, timesteps, prompts, classes), schedule.get_velocity(x, noise, timesteps))


def train_generator(network: SiteDiffusion, prompt: torch.nn.Parameter, x: torch.Tensor, classes: torch.Tensor | None,
                    steps: int, batch_size: int, lr: float, seed: int,
                    replay: Sequence[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]] = (),
                    compute: Compute = Compute(), prompt_dropout: float = 0.0) -> dict[str, float]:
    """Train ``network`` and one site's ``prompt`` ``(T, D)`` in place for ``steps`` Adam steps
    on the site's samples ``x`` ``(N, C, *spatial)`` (and ``classes`` ``(N,)``).

    ``replay`` holds, per earlier site, generated samples, their classes and that site's fixed
    prompt: batches are drawn from the site's samples and the replay together, so that the
    shared network keeps generating the earlier sites (generative replay, Shin et al., 2017)
    instead of drifting to the site that trained last. ``prompt_dropout`` is the share of
    samples trained under the null prompt instead of their site's, so that the network also
    learns the site-free model that classifier-free guidance needs (:func:`sample`).
    ``compute`` is where the training runs; ``network`` and ``prompt`` are back on the CPU
    afterwards.
    """
    generator = torch.Generator().manual_seed(seed)
    owned = [(x, classes, None)] + [(rx, rc, rp.expand(len(rx), -1, -1)) for rx, rc, rp in replay]
    samples = torch.cat([part[0] for part in owned])
    labels = None if classes is None else torch.cat([part[1] for part in owned])
    fixed = [part[2] for part in owned[1:]]
    fixed_prompts = torch.cat(fixed) if fixed else torch.empty(0, *prompt.shape)
    samples, fixed_prompts = compute.put([samples, fixed_prompts])
    labels = None if labels is None else labels.to(compute.device)
    schedule = _noise_schedule()
    order = itertools.chain.from_iterable(torch.randperm(len(samples), generator=generator).split(batch_size)
                                          for _ in itertools.count())
    # Moving a module moves its parameters in place: ``prompt`` itself trains on the device.
    with compute.placed(network, torch.nn.ParameterList([prompt])):
        optimizer = torch.optim.Adam([*network.parameters(), prompt], lr=lr)
        network.train()
        total, start = 0.0, time.perf_counter()
        for index in itertools.islice(order, steps):
            index = index.to(compute.device)
            own = index < len(x)
            # the site's own samples get its trainable prompt; replayed ones their site's fixed prompt
            prompts = prompt.expand(len(index), -1, -1).clone()
            prompts[~own] = fixed_prompts[index[~own] - len(x)]
            if prompt_dropout > 0:
                dropped = (torch.rand(len(index), generator=generator) < prompt_dropout).to(compute.device)
                prompts[dropped] = 0.0
            batch_classes = None if labels is None else labels[index]
            with compute.autocast():
                loss = denoising_loss(network, samples[index], prompts, batch_classes, generator, schedule)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
    return {MetricKey.GENERATOR_LOSS: total / steps, MetricKey.SECONDS: time.perf_counter() - start,
            MetricKey.NUM_EXAMPLES: len(x)}


def guided_prediction(network: SiteDiffusion, x: torch.Tensor, timesteps: torch.Tensor, prompts: torch.Tensor,
                      classes: torch.Tensor | None, guidance: float) -> torch.Tensor:
    """The network's prediction for ``prompts`` under classifier-free guidance (Ho & Salimans,
    2022): the site-free prediction (the null prompt, all zeros; the class kept) moved
    ``guidance`` times its difference to the site's, which strengthens what sets the site
    apart. ``guidance`` 1 is the site's own prediction, at the cost of one pass."""
    if guidance == 1.0:
        return network(x, timesteps, prompts, classes)
    both = network(torch.cat([x, x]), torch.cat([timesteps, timesteps]),
                   torch.cat([prompts, torch.zeros_like(prompts)]),
                   None if classes is None else torch.cat([classes, classes]))
    site, site_free = both.chunk(2)
    return site_free + guidance * (site - site_free)


@torch.no_grad()
def sample(network: SiteDiffusion, prompt: torch.Tensor, classes: torch.Tensor | None, n: int, sampling_steps: int,
           seed: int, batch_size: int = 64, compute: Compute = Compute(), guidance: float = 1.0) -> torch.Tensor:
    """``(n, C, *spatial)`` samples (on the CPU) for the site whose ``prompt`` ``(T, D)`` is given
    (and for ``classes`` ``(n,)``), by deterministic DDIM on ``compute``'s device, with
    classifier-free ``guidance`` (:func:`guided_prediction`); the same seed gives the same
    samples."""
    network.eval()
    # "trailing" starts sampling at the last training timestep, where the data is pure noise as
    # the sampler assumes ("leading" would start short of it and pull samples towards 0).
    scheduler = DDIMScheduler.from_config(_noise_schedule().config, timestep_spacing="trailing")
    scheduler.set_timesteps(sampling_steps)
    generator = torch.Generator().manual_seed(seed)
    # the starting noise comes from the CPU generator on any device (DDIM draws nothing after)
    x = torch.randn((n, *network.sample_shape), generator=generator).to(compute.device)
    prompt = prompt.to(compute.device)
    classes = None if classes is None else classes.to(compute.device)
    chunks = []
    with compute.placed(network):
        for start in range(0, n, batch_size):
            chunk = x[start:start + batch_size]
            chunk_classes = None if classes is None else classes[start:start + batch_size]
            prompts = prompt.expand(len(chunk), -1, -1)
            # the scheduler's timesteps and tables stay on the CPU; the network takes its own copy
            for t in scheduler.timesteps:
                with compute.autocast():
                    noise = guided_prediction(network, chunk, t.expand(len(chunk)).to(compute.device), prompts,
                                              chunk_classes, guidance)
                chunk = scheduler.step(noise.float(), t, chunk).prev_sample
            chunks.append(chunk.clamp(-1, 1))
    return torch.cat(chunks).cpu()
