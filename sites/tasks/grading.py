"""Brain tumor grading (LGG vs HGG) from four MRI sequences (docs/design.md#grading).

Models (``model``):

- ``single``: one MC3 on one sequence (``modality``);
- ``early_fusion``: one MC3 with the four sequences as input channels;
- ``late_fusion``: one MC3 branch per sequence, each trained with its own cross entropy,
  prediction = mean of the branches' logits;
- ``cmg``: the late-fusion network trained with cross-modality guidance. Every stage has two
  phases: ``branches`` (as late fusion, ``warmup_share`` of ``local_steps`` per round), then
  ``guided`` (the rest): before it, the present sites report, per branch, counts on their
  validation split (correctly ordered HGG-LGG pairs and summed cross entropy); the server
  picks the primary modality from their totals (``primary_selection``) and keeps it for the
  rest of the stage, and the guided phase adds ``guidance_weight`` x the guidance loss towards
  it: :func:`~sites.losses.cross_modality_guidance` of the logits or
  :func:`~sites.losses.feature_guidance` of the pooled features (``guidance``). The primary is
  chosen on validation data at every stage, never fixed in advance.

``attention`` adds dual attention (spatial and slice) to every MC3. Metrics: ROC AUC (primary),
accuracy, sensitivity and specificity at probability 0.5, and for multi-branch models each
branch's AUC.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import NormalizeIntensity
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator
from torch import nn
from torch.utils.data import TensorDataset

from .. import seeding
from ..config import invalid
from ..data.brain import MODALITIES, render_brain_volumes, sequence_scanner
from ..data.brats import load_site_cases, read_site_cases
from ..data.manifest import check_manifest
from ..data.scanner import acquire
from ..group_metrics import auc
from ..losses import cross_modality_guidance, feature_guidance
from ..networks.mc3 import MC3
from ..networks.multi_branch_mc3 import MultiBranchMC3
from ..protocol import MetricKey, StatisticsQuery, TrainConfig
from ..spec import SiteSpec
from .base import Phase, SiteData, Task, TaskArguments, refuse_field_of_view
from .capabilities import (
    ClassLogits,
    LabelCorruption,
    PhaseStatistics,
    ReferenceData,
    ReplayCodec,
    cannot_generate,
    from_replay_range,
    to_replay_range,
)

_SPLIT_STREAMS = {"train": seeding.Stream.DATA_TRAIN, "validation": seeding.Stream.DATA_VALIDATION,
                  "test": seeding.Stream.DATA_TEST, "reference": seeding.Stream.DATA_REFERENCE}


class GradingArguments(TaskArguments):
    """:class:`GradingTask`'s arguments, besides :class:`~sites.tasks.base.TaskArguments`.

    Parameters
    ----------
    depth, image_size : int
        Volumes are ``depth`` slices of ``image_size`` x ``image_size``.
    channels : list of int
        MC3 stage widths; ``image_size`` must be divisible by ``2 ** len(channels)``.
    conv3d_stages : int
        Leading MC3 stages with full 3D kernels, at most ``len(channels)``.
    model : str
        One of ``single``, ``early_fusion``, ``late_fusion``, ``cmg``.
    modality : str
        The sequence of ``model=single``: ``t1``, ``t1ce``, ``t2`` or ``flair``.
    attention : bool
        Dual attention in every MC3.
    guidance : str
        ``cmg``'s guidance loss: ``logit`` (KL towards the primary's prediction) or ``feature``
        (the secondaries' projected pooled features towards the primary's).
    guidance_weight : float
        Weight of the guidance loss in ``cmg``'s guided phase (>= 0).
    guidance_temperature : float
        Softmax temperature of the logit guidance loss (> 0).
    warmup_share : float
        Share of ``local_steps`` of each ``cmg`` round spent in the ``branches`` warm-up, in
        (0, 1); the guided phase takes the rest.
    primary_selection : str
        What picks ``cmg``'s primary from the summed validation counts: ``auc`` (the highest
        pooled AUC: correctly ordered pairs over all pairs, ties by cross entropy) or ``nll``
        (the lowest mean cross entropy).
    n_validation : int
        Validation cases per site (synthetic data), used to choose ``cmg``'s primary modality.
    manifest : str or None
        BraTS-style manifest (see :mod:`sites.data.brats`); ``None`` generates data.
    """

    depth: PositiveInt
    image_size: PositiveInt
    channels: Annotated[list[PositiveInt], Field(min_length=1)]
    conv3d_stages: NonNegativeInt
    model: Literal["single", "early_fusion", "late_fusion", "cmg"]
    modality: Literal[MODALITIES]
    attention: bool
    guidance: Literal["logit", "feature"]
    guidance_weight: NonNegativeFloat
    guidance_temperature: PositiveFloat
    warmup_share: Annotated[float, Field(gt=0, lt=1)]
    primary_selection: Literal["auc", "nll"]
    n_validation: PositiveInt
    manifest: str | None = None

    @model_validator(mode="after")
    def _fits_the_network(self) -> Self:
        if self.conv3d_stages > len(self.channels):
            raise invalid("conv3d_stages", f"must be at most len(channels) = {len(self.channels)} "
                                           f"(got {self.conv3d_stages})")
        if self.image_size % 2 ** len(self.channels) != 0:
            raise invalid("image_size", f"must be divisible by 2 ** len(channels) = {2 ** len(self.channels)} "
                                        f"(got {self.image_size})")
        return self


class GradingTask(Task, ReplayCodec, ClassLogits, LabelCorruption, ReferenceData, PhaseStatistics):
    """Binary glioma grading of multi-modal MRI volumes, scored by ROC AUC. Its arguments:
    :class:`GradingArguments`.

    Shapes: volumes ``(N, 4, D, H, W)`` float, z-scored per case and sequence, sequences in
    :data:`~sites.data.brain.MODALITIES` order; grades ``(N,)`` int64 (0 LGG, 1 HGG); network
    output ``(N, 2)`` logits.
    """

    primary_metric = "auc"
    arguments = GradingArguments

    def __init__(self, depth: int, image_size: int, channels: list[int], conv3d_stages: int, model: str,
                 modality: str, attention: bool, guidance: str, guidance_weight: float, guidance_temperature: float,
                 warmup_share: float, primary_selection: str, n_validation: int, manifest: str | None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.depth, self.image_size = depth, image_size
        self.channels, self.conv3d_stages = tuple(channels), conv3d_stages
        self.model, self.modality, self.attention = model, modality, attention
        self.guidance, self.primary_selection, self.warmup_share = guidance, primary_selection, warmup_share
        self.guidance_weight, self.guidance_temperature = guidance_weight, guidance_temperature
        self.n_validation = n_validation
        self.manifest = None if manifest is None else Path(manifest)

    # --- model and phases -------------------------------------------------------------------

    @property
    def multi_branch(self) -> bool:
        return self.model in ("late_fusion", "cmg")

    def build_model(self) -> nn.Module:
        if self.multi_branch:
            return MultiBranchMC3(len(MODALITIES), 2, self.channels, self.conv3d_stages, self.attention,
                                  projections=self.model == "cmg" and self.guidance == "feature")
        in_channels = len(MODALITIES) if self.model == "early_fusion" else 1
        return MC3(in_channels, 2, self.channels, self.conv3d_stages, self.attention)

    @property
    def phases(self) -> list[Phase]:
        if self.model != "cmg":
            return [Phase("train")]
        return [Phase("branches", steps_share=self.warmup_share),
                Phase("guided", statistics=True, steps_share=1 - self.warmup_share)]

    def _inputs(self, volumes: torch.Tensor) -> torch.Tensor:
        if self.model == "single":
            m = MODALITIES.index(self.modality)
            return volumes[:, m : m + 1]
        return volumes

    # --- data -------------------------------------------------------------------------------

    def check_sites(self, sites: Sequence[SiteSpec]) -> None:
        refuse_field_of_view(sites, "grading")
        if self.manifest is not None:
            check_manifest(self.manifest, [site.id for site in sites], read_site_cases)

    def load_site(self, site: SiteSpec, seed: int) -> SiteData:
        if self.manifest is not None:
            splits = load_site_cases(self.manifest, site.id, self.depth, self.image_size,
                                     seeding.numpy_rng(seed, site.index))
        else:
            splits = {name: self._generate(site, seed, name) for name in ("train", "validation", "test")}
        for name, (_, grades) in splits.items():
            if grades.min() == grades.max():
                raise ValueError(f"{name} cases are all {'HGG' if grades[0] else 'LGG'}; a site needs both grades")
        train, validation, test = (TensorDataset(*(torch.from_numpy(a) for a in splits[name]))
                                   for name in ("train", "validation", "test"))
        return SiteData(train=train, test=test, validation=validation)

    def _generate(self, site: SiteSpec, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
        n = {"train": site.n_train or self.n_train, "validation": self.n_validation,
             "test": site.n_test or self.n_test, "reference": site.n_train or self.n_train}[split]
        stream = _SPLIT_STREAMS[split]
        rng = seeding.numpy_rng(seed, site.index, stream, 0)
        grades = rng.permutation(np.arange(n) % 2).astype(np.int64)
        volumes = render_brain_volumes(grades, self.depth, self.image_size, site.scanner.contrast, rng)
        for m, modality in enumerate(MODALITIES):
            scanner = sequence_scanner(site.scanner, modality,
                                       seeding.numpy_rng(site.index, seeding.Stream.SEQUENCE_SIGNATURE, m))
            volumes[:, m] = acquire(volumes[:, m], scanner, seeding.numpy_rng(seed, site.index, stream, 1 + m))[:, 0]
        flat = volumes.reshape(n * len(MODALITIES), *volumes.shape[2:])
        volumes = np.asarray(NormalizeIntensity(channel_wise=True)(flat), dtype=np.float32).reshape(volumes.shape)
        return volumes, grades

    def reference_data(self, site: SiteSpec, seed: int) -> TensorDataset:
        if self.manifest is not None:
            raise cannot_generate(self)
        return TensorDataset(*(torch.from_numpy(a) for a in self._generate(site, seed, "reference")))

    # --- training ---------------------------------------------------------------------------

    def batch_loss(self, model: nn.Module, batch: list[torch.Tensor], config: TrainConfig) -> torch.Tensor:
        volumes, grades = batch
        if not self.multi_branch:
            return F.cross_entropy(model(self._inputs(volumes)), grades)
        features = model.branch_features(volumes)
        logits = model.classify(features)
        loss = F.cross_entropy(logits.flatten(0, 1), grades.repeat_interleave(len(MODALITIES)))
        if config.phase != "guided":
            return loss
        primary = MODALITIES.index(config.entries["primary-modality"])
        if self.guidance == "feature":
            guidance = feature_guidance(features, model.project(features), primary)
        else:
            guidance = cross_modality_guidance(logits, primary, self.guidance_temperature)
        return loss + self.guidance_weight * guidance

    @torch.no_grad()
    def site_statistics(self, model: nn.Module, data: SiteData, query: StatisticsQuery) -> dict[str, float]:
        """Counts on the site's validation split: its size ``validation-n``, its HGG-LGG pairs
        ``validation-pairs`` and, per branch, the summed cross entropy ``validation-nll-<m>`` and
        the correctly ordered pairs ``validation-concordant-<m>`` (ties count one half)."""
        volumes, grades = self.compute.put(data.validation.tensors)
        model.eval()
        with self.compute.placed(model), self.compute.autocast():
            logits = model.branch_logits(volumes).float()
        counts = {"validation-n": float(len(grades)),
                  "validation-pairs": float((grades == 1).sum() * (grades == 0).sum())}
        for m, modality in enumerate(MODALITIES):
            counts[f"validation-nll-{modality}"] = float(F.cross_entropy(logits[:, m], grades, reduction="sum"))
            counts[f"validation-concordant-{modality}"] = concordant_pairs(logits[:, m, 1] - logits[:, m, 0], grades)
        return counts

    def phase_config(self, phase: str, totals: Mapping[str, float]) -> dict[str, Any]:
        """``primary-modality``: the branch with the highest pooled validation AUC (ties: the
        lower cross entropy) or, with ``primary_selection=nll``, the lowest cross entropy."""
        figures = validation_figures(totals)
        if self.primary_selection == "nll":
            return {"primary-modality": min(MODALITIES, key=lambda m: figures[f"validation_nll_{m}"])}
        return {"primary-modality": min(MODALITIES, key=lambda m: (-figures[f"validation_auc_{m}"],
                                                                   figures[f"validation_nll_{m}"]))}

    # --- evaluation -------------------------------------------------------------------------

    def corrupt_labels(self, data: TensorDataset) -> TensorDataset:
        """Swapped grades: every HGG recorded as LGG and every LGG as HGG."""
        volumes, grades = data.tensors
        return TensorDataset(volumes, 1 - grades)

    # --- replay -----------------------------------------------------------------------------

    replay_classes = 2

    @property
    def replay_shape(self) -> tuple[int, ...]:
        return len(MODALITIES), self.depth, self.image_size, self.image_size

    def encode_replay(self, data: TensorDataset) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each volume whole, its sequences as channels (a 3D generator, docs/continual.md says
        why), the grade as the class condition."""
        volumes, grades = data.tensors
        return to_replay_range(volumes), grades

    def decode_replay(self, x: torch.Tensor, classes: torch.Tensor | None) -> TensorDataset:
        return TensorDataset(from_replay_range(x), classes)

    def logits(self, model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        return model(self._inputs(batch[0]))

    def targets(self, batch: list[torch.Tensor]) -> torch.Tensor:
        return batch[1]

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: TensorDataset) -> dict[str, float]:
        model.eval()
        volumes, grades = data.tensors
        scores = model(self._inputs(volumes)).softmax(dim=1)[:, 1].float().cpu().numpy()
        labels = grades.cpu().numpy()
        predicted = (scores > 0.5).astype(np.int64)
        metrics = {
            MetricKey.NUM_EXAMPLES: len(labels),
            "auc": auc(scores, labels),
            "accuracy": float((predicted == labels).mean()),
            "sensitivity": float(predicted[labels == 1].mean()),
            "specificity": float(1 - predicted[labels == 0].mean()),
        }
        if self.multi_branch:
            branch_scores = model.branch_logits(volumes).softmax(dim=2)[..., 1].float().cpu().numpy()
            metrics.update({f"auc-{modality}": auc(branch_scores[:, m], labels)
                            for m, modality in enumerate(MODALITIES)})
        return metrics

    def pool_metrics(self, site_metrics: Mapping[str, Mapping[str, Any]],
                     statistics: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        """``cmg``: the figures the primary modality was chosen on (:func:`validation_figures`)."""
        totals = statistics.get("guided")
        return validation_figures(totals) if totals else {}


def concordant_pairs(scores: torch.Tensor, grades: torch.Tensor) -> float:
    """Pairs of an HGG and an LGG case where the HGG case scores higher, ties counted one half:
    the Mann-Whitney count, which divided by the number of pairs is the ROC AUC.

    Parameters
    ----------
    scores : torch.Tensor
        ``(N,)`` HGG scores (any monotone function of the HGG probability).
    grades : torch.Tensor
        ``(N,)`` 0 (LGG) or 1 (HGG).
    """
    difference = scores[grades == 1][:, None] - scores[grades == 0][None, :]
    return float((difference > 0).sum() + 0.5 * (difference == 0).sum())


def validation_figures(totals: Mapping[str, float]) -> dict[str, float]:
    """Per branch, from the validation counts summed over the present sites: ``validation_auc_<m>``
    (correctly ordered pairs over pairs; pairs are formed within a site, so this is the mean of
    the sites' AUCs weighted by their pairs) and ``validation_nll_<m>`` (mean cross entropy)."""
    figures = {f"validation_auc_{m}": totals[f"validation-concordant-{m}"] / totals["validation-pairs"]
               for m in MODALITIES}
    figures.update({f"validation_nll_{m}": totals[f"validation-nll-{m}"] / totals["validation-n"] for m in MODALITIES})
    return figures
