"""What a task may offer beyond the :class:`~sites.tasks.base.Task` contract, one small protocol
per capability, and the refusal of a feature whose capability a task lacks.

The protocols are structural: a task has a capability when it has the members, whether or not
it names the protocol among its bases (subclassing :class:`ClassLogits` also gives its default
per-sample losses). The run checks them with ``isinstance`` before anything starts
(:func:`require`); docs/platform.md lists which feature needs which.
"""

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from .. import seeding
from ..data.markers import stamp_markers
from ..errors import ConfigError
from ..protocol import StatisticsQuery
from ..spec import SiteSpec
from .base import SiteData

# Z-scored intensities are divided by this to fit the diffusion models' [-1, 1] (clipped
# beyond three standard deviations).
REPLAY_INTENSITY_SCALE = 3.0


def to_replay_range(images: torch.Tensor) -> torch.Tensor:
    """Z-scored intensities -> ``[-1, 1]``."""
    return (images / REPLAY_INTENSITY_SCALE).clamp(-1, 1)


def from_replay_range(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`to_replay_range` inside ``[-1, 1]``."""
    return x * REPLAY_INTENSITY_SCALE


@runtime_checkable
class ReplayCodec(Protocol):
    """A replay space: what generative replay's generators learn and sample (``replay``)."""

    #: Classes of the replay generator's class condition; 0 where the label is generated as a
    #: channel of the sample (segmentation masks).
    replay_classes: int

    @property
    def replay_shape(self) -> tuple[int, ...]:
        """``(channels, *spatial)`` of a sample in replay space (:meth:`encode_replay`): two
        spatial sizes for images, three for volumes (the generator is 2D or 3D alike)."""

    def encode_replay(self, data: TensorDataset) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A training split in the replay generator's space: ``(N, *replay_shape)`` in ``[-1, 1]``
        and the ``(N,)`` classes of the condition (``None`` if ``replay_classes`` is 0)."""

    def decode_replay(self, x: torch.Tensor, classes: torch.Tensor | None) -> TensorDataset:
        """Generated samples back in the format of the training split (the inverse of
        :meth:`encode_replay`; labels a generator cannot know, such as a bias attribute, are
        marked unknown)."""


@runtime_checkable
class ClassLogits(Protocol):
    """Class logits and targets, and the per-sample losses they give: what unlearning
    objectives push on, EWC's Fisher and membership inference measure (site withdrawals, the
    privacy audit, ``strategy=ewc``). Subclass it to inherit :meth:`per_sample_loss` and
    :meth:`sample_losses` as cross entropy."""

    def logits(self, model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        """``(B, C, ...)`` class logits of the model's prediction for a batch of the training split."""

    def targets(self, batch: list[torch.Tensor]) -> torch.Tensor:
        """``(B, ...)`` class indices matching :meth:`logits`."""

    def per_sample_loss(self, model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        """``(B,)`` cross entropy of each sample (averaged over positions for dense outputs),
        differentiable: the negative log-likelihood that unlearning objectives push on."""
        losses = F.cross_entropy(self.logits(model, batch), self.targets(batch), reduction="none")
        return losses.flatten(1).mean(dim=1) if losses.dim() > 1 else losses

    @torch.no_grad()
    def sample_losses(self, model: nn.Module, data: TensorDataset) -> torch.Tensor:
        """``(N,)`` :meth:`per_sample_loss` of every sample of ``data`` in eval mode
        (membership-inference scores)."""
        model.eval()
        with self.compute.placed(model), self.compute.autocast():
            return self.per_sample_loss(model, self.compute.put(data.tensors)).float().cpu()


@runtime_checkable
class LabelCorruption(Protocol):
    """A fixed rule that makes a training split's labels wrong: the unreliable source of a
    site with ``corrupt_labels`` (site withdrawals with ``reason=incorrectness``)."""

    def corrupt_labels(self, data: TensorDataset) -> TensorDataset:
        """The same samples with labels made wrong by the task's rule."""


@runtime_checkable
class ReferenceData(Protocol):
    """Fresh data of a site's distribution that the federation never sees: what the privacy
    audit's reference models train on (``scenario.audit.reference_models > 0``)."""

    def reference_data(self, site: SiteSpec, seed: int) -> TensorDataset:
        """Training-like samples of ``site``, from their own seed stream."""


@runtime_checkable
class PhaseStatistics(Protocol):
    """Counts the sites report before a phase with ``statistics=True``, and what the server
    makes of their sums (PBBL's prior, grading's primary modality)."""

    def site_statistics(self, model: nn.Module, data: SiteData, query: StatisticsQuery) -> dict[str, float]:
        """Counts the site reports before the phase ``query.phase`` (summed across sites)."""

    def phase_config(self, phase: str, totals: Mapping[str, float]) -> dict[str, Any]:
        """The entries of ``phase``'s training config (:attr:`~sites.protocol.TrainConfig.entries`),
        from the summed site statistics."""


def reference_sample(task: ReferenceData, site: SiteSpec, seed: int) -> TensorDataset:
    """:meth:`ReferenceData.reference_data` of ``site`` with identifying markers burned into a
    ``site.marker_rate`` share, as in its training data (:mod:`sites.data.markers`)."""
    data = task.reference_data(site, seed)
    if site.marker_rate > 0:
        stamp_markers(data.tensors[0], site.marker_rate, seeding.numpy_rng(seed, site.index, seeding.Stream.MARKERS, 2))
    return data


def cannot_generate(task: object) -> ConfigError:
    """What :meth:`ReferenceData.reference_data` raises for a task that reads real data
    (``task.manifest``): there is nothing fresh of a site's distribution to train on."""
    return ConfigError("scenario.audit.reference_models", f"{type(task).__name__} reads its data from "
                       "task.manifest and cannot generate fresh data for reference models; set it to 0")


def require(task: object, needs: Iterable[tuple[type, str]], key: str) -> None:
    """Refuse, before anything runs, features whose capability ``task`` lacks.

    Parameters
    ----------
    task : object
        The run's task.
    needs : iterable of (protocol, str)
        Each capability the run needs and the feature that needs it, in words.
    key : str
        The config key the refusal names.

    Raises
    ------
    ConfigError
        One line naming every missing protocol, its members and the features that need it.
    """
    missing: dict[type, list[str]] = {}
    for capability, feature in needs:
        if not isinstance(task, capability):
            missing.setdefault(capability, []).append(feature)
    if missing:
        gaps = "; ".join(f"sites.tasks.{capability.__name__} ({', '.join(_members(capability))}), needed by "
                         f"{' and '.join(features)}" for capability, features in missing.items())
        raise ConfigError(key, f"{type(task).__name__} does not implement {gaps}")


def _members(capability: type) -> list[str]:
    """The public names a protocol declares, in order (annotated attributes first)."""
    names = [*capability.__annotations__, *vars(capability)]
    return [name for name in dict.fromkeys(names) if not name.startswith("_")]
