"""Differential privacy at a site: DP-SGD with Opacus, one accountant per site for the whole run.

A site's accountant holds the history of every DP-SGD step the site has taken (noise, sampling
rate, steps), across rounds and stages, so the epsilon it reports is the composition over the
run. A site spends budget only in rounds where it trains.

Opacus is imported where it is used, so that runs without DP do not pay for it (about 0.8 s in
every process).
"""

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
from pydantic import BeforeValidator, Field, PositiveFloat, model_validator
from torch import nn
from torch.utils.data import DataLoader

from .config import ConfigModel, check_keys, invalid
from .errors import ConfigError
from .protocol import MetricKey
from .seeding import stream_seed

METHODS = ("off", "dp")
#: What a DP site does with its training metrics (``privacy.train_metrics``).
TRAIN_METRICS = ("withhold", "noise", "release")
# Beyond this much noise no model learns anything; a target that needs more is refused.
MAX_NOISE_MULTIPLIER = 100.0


class DPConfig(ConfigModel):
    """The ``privacy`` config node of ``privacy=dp`` (``privacy=off`` is no DPConfig: see :data:`Privacy`).

    Parameters
    ----------
    method : str
        ``dp``.
    noise_multiplier : float or None
        Gaussian noise std over the clipping norm; ``None`` derives it from ``target_epsilon``.
    target_epsilon : float or None
        The epsilon a site may reach after all its planned steps (used when
        ``noise_multiplier`` is ``None``).
    max_grad_norm : float
        Per-sample gradient clipping norm.
    delta : float
        The delta of the reported (epsilon, delta) guarantee, in (0, 1).
    train_metrics : str
        What training and unlearning replies carry besides the model: ``withhold`` (only the
        example count Flower weighs by, and epsilon), ``noise`` (also ``train_loss``, the
        trained model's mean per-sample loss on the training split through a Gaussian mechanism
        charged to the site's accountant: :func:`noisy_mean_loss`), ``release`` (the clean
        ``train_loss``, outside the guarantee).
    train_loss_clip : float
        ``noise``: each per-sample loss is clipped to [0, ``train_loss_clip``].
    train_loss_noise : float
        ``noise``: the Gaussian noise's std over ``train_loss_clip``.
    """

    method: Literal["dp"]
    noise_multiplier: PositiveFloat | None = None
    target_epsilon: PositiveFloat | None = None
    max_grad_norm: PositiveFloat
    delta: Annotated[float, Field(gt=0, lt=1)]
    train_metrics: Literal[TRAIN_METRICS] = "withhold"
    train_loss_clip: PositiveFloat = 2.0
    train_loss_noise: PositiveFloat = 20.0

    @model_validator(mode="after")
    def _one_noise_source(self) -> "DPConfig":
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise invalid("noise_multiplier", "set exactly one of noise_multiplier and target_epsilon")
        return self

    @functools.lru_cache(maxsize=None)  # a site asks at every round; the answer never changes
    def noise_for(self, sample_rate: float, steps: int) -> float:
        """The noise multiplier a site uses, given its sampling rate and its planned DP-SGD steps."""
        if self.noise_multiplier is not None:
            return self.noise_multiplier
        from opacus.accountants import RDPAccountant
        from opacus.accountants.utils import get_noise_multiplier

        # Epsilon does not fall to 0 as the noise grows (the RDP-to-(epsilon, delta) conversion has
        # a floor), and Opacus's search slows down as it doubles the noise: check the floor first.
        floor = RDPAccountant()
        floor.history = [(MAX_NOISE_MULTIPLIER, sample_rate, steps)]
        lowest = floor.get_epsilon(self.delta)
        if lowest > self.target_epsilon:
            raise ConfigError("privacy.target_epsilon",
                              f"{self.target_epsilon} cannot be reached in {steps} steps at sampling rate "
                              f"{sample_rate:.4g} with delta {self.delta}: even noise multiplier "
                              f"{MAX_NOISE_MULTIPLIER:g} gives epsilon {lowest:.3g}")
        return float(get_noise_multiplier(target_epsilon=self.target_epsilon, target_delta=self.delta,
                                          sample_rate=sample_rate, steps=steps, accountant="rdp"))

    def released_metrics(self, metrics: Mapping[str, float], sample_losses: Callable[[], torch.Tensor],
                         accountant: "SiteAccountant", seed: int) -> dict[str, float]:
        """The training ``metrics`` a DP site sends, as :attr:`train_metrics` says; ``sample_losses``
        gives the trained model's per-sample losses on the training split (called for ``noise``
        only), ``seed`` seeds the noise."""
        if self.train_metrics == "release":
            return dict(metrics)
        released = {MetricKey.NUM_EXAMPLES: metrics[MetricKey.NUM_EXAMPLES]}
        if self.train_metrics == "noise":
            released[MetricKey.TRAIN_LOSS] = noisy_mean_loss(sample_losses(), self.train_loss_clip,
                                                             self.train_loss_noise, accountant, seed)
        return released


def noisy_mean_loss(losses: torch.Tensor, clip: float, noise_multiplier: float, accountant: "SiteAccountant",
                    seed: int) -> float:
    """The Gaussian mechanism on a mean loss: ``(sum of losses clipped to [0, clip] + N(0,
    (noise_multiplier * clip)^2)) / n``, charged to ``accountant``.

    Adding or removing a patient moves the clipped sum by at most ``clip``, so this is the
    Gaussian mechanism of noise multiplier ``noise_multiplier`` on a sum of sensitivity
    ``clip``: an RDP accountant entry of that noise, sampling rate 1 and one step, composed with
    the site's DP-SGD steps. The count ``n`` is the split size, which the site reports anyway.
    """
    noise = torch.randn((), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    accountant.release(noise_multiplier)
    return float((losses.double().clamp(0, clip).sum() + noise_multiplier * clip * noise) / len(losses))


def _off_is_none(config: Any) -> Any:
    """``method: off`` (and nothing else) is ``None``; ``method: dp`` goes on to :class:`DPConfig`."""
    if not isinstance(config, Mapping) or config.get("method") == "dp":
        return config
    if config.get("method") != "off":
        raise invalid("method", f"must be one of {list(METHODS)} (got {config.get('method')!r})")
    check_keys(config, ["method"])
    return None


#: The ``privacy`` config node: a :class:`DPConfig`, or ``None`` for ``method: off``.
Privacy = Annotated[DPConfig | None, BeforeValidator(_off_is_none)]


class SiteAccountant:
    """An Opacus RDP accountant whose history survives between training calls (as JSON).

    Its JSON lists the DP-SGD entries ``[noise, sampling rate, steps]`` Opacus keeps, then one
    ``[noise, 1, 1, "train_loss"]`` per noised training loss (:func:`noisy_mean_loss`): both are
    Gaussian mechanisms that epsilon composes, but only the first are DP-SGD steps.
    """

    def __init__(self, history_json: str = "[]") -> None:
        from opacus.accountants import RDPAccountant

        entries = json.loads(history_json)
        self.accountant = RDPAccountant()
        self.accountant.history = [tuple(entry) for entry in entries if len(entry) == 3]
        self.releases = [entry for entry in entries if len(entry) == 4]

    def to_json(self) -> str:
        return json.dumps([*self.accountant.history, *self.releases])

    @property
    def steps(self) -> int:
        """DP-SGD steps taken."""
        return sum(steps for _, _, steps in self.accountant.history)

    def release(self, noise_multiplier: float) -> None:
        """Charge one Gaussian release of a training loss of ``noise_multiplier``."""
        self.releases.append([noise_multiplier, 1.0, 1, MetricKey.TRAIN_LOSS])

    def epsilon(self, delta: float) -> float:
        """Epsilon of everything the site has released so far (0 before its first step)."""
        from opacus.accountants import RDPAccountant

        composed = RDPAccountant()
        composed.history = [*self.accountant.history, *(tuple(entry[:3]) for entry in self.releases)]
        return float(composed.get_epsilon(delta)) if composed.history else 0.0


@dataclass
class PrivateTraining:
    """What one DP-SGD training call of a site needs.

    Parameters
    ----------
    noise_multiplier, max_grad_norm : float
        DP-SGD's noise and clipping.
    accountant : SiteAccountant
        The site's accountant; the call's steps are added to it.
    """

    noise_multiplier: float
    max_grad_norm: float
    accountant: SiteAccountant

    def wrap(self, model: nn.Module, loader: DataLoader, seed: int,
             make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer],
             probe_loss: Callable[[nn.Module], torch.Tensor]) -> tuple[nn.Module, torch.optim.Optimizer, DataLoader]:
        """Opacus's private model and optimizer, and a Poisson-sampled loader, all seeded by ``seed``.

        ``probe_loss`` computes the phase's loss on one batch; parameters it leaves without a
        gradient (a part of the network another phase trains) are frozen for this call, since
        Opacus needs a per-sample gradient for every trainable parameter. The probe's gradient
        is discarded: nothing computed from it leaves the site.
        """
        from opacus import PrivacyEngine
        from opacus.data_loader import DPDataLoader
        from opacus.validators import ModuleValidator

        problems = ModuleValidator.validate(model, strict=False)
        if problems:  # fixing them here would change the architecture the federation shares
            reasons = "; ".join(map(str, problems[:3]))
            raise ValueError(f"privacy=dp: the task's network does not suit DP-SGD ({reasons}); "
                             "build it with GroupNorm or InstanceNorm instead of BatchNorm")
        model.zero_grad(set_to_none=True)
        probe_loss(model).backward()
        for parameter in model.parameters():
            parameter.requires_grad_(parameter.grad is not None)
        model.zero_grad(set_to_none=True)
        sampled = DPDataLoader.from_data_loader(loader, generator=torch.Generator().manual_seed(seed))
        engine = PrivacyEngine()
        engine.accountant = self.accountant.accountant
        optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad])
        return engine.make_private(module=model, optimizer=optimizer, data_loader=sampled,
                                   noise_multiplier=self.noise_multiplier, max_grad_norm=self.max_grad_norm,
                                   poisson_sampling=False,
                                   # Opacus draws the noise on the parameters' device.
                                   noise_generator=torch.Generator(next(model.parameters()).device)
                                   .manual_seed(stream_seed(seed, 1)))

    @staticmethod
    def release(private_model: nn.Module, model: nn.Module) -> None:
        """Undo :meth:`wrap` on ``model``: Opacus's hooks and attributes removed, every
        parameter trainable again."""
        private_model.cleanup()
        for parameter in model.parameters():
            parameter.requires_grad_(True)
