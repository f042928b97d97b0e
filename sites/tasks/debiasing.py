"""Debiased classification of chest-radiograph-like images (docs/design.md#pbbl).

A lung opacity is the label; a source appearance is a bias attribute correlated with it in
training. Methods (``method``):

- ``erm``: plain cross entropy;
- ``pbbl``: pseudo bias-balanced learning. ``pseudo_label_repeats`` bias-capturing models are
  trained with generalized cross entropy, one phase each; their mean probability above the
  Youden-J point against the target label gives the pseudo bias labels. With
  ``pseudo_threshold=federation`` the point is the federation's: sites report histograms of
  the probability per label (counts only) and the server picks the point on their sum; with
  ``site`` each site picks its own. With ``pseudo_label_rounds`` > 1 this is repeated, and a
  round's bias models learn the previous round's pseudo labels as their targets. The debiased
  model then trains with the bias-balanced softmax ``CE(f(x) + log p(y | b_hat), y)`` under the
  prior built from the summed label x pseudo-bias counts;
- ``bias_balanced_oracle``: the same loss with the true bias labels (upper reference).

Arrangements (``arrangement``):

- ``source_biased``: every site holds two sources; source 1 is rendered with the site's
  scanner shifted by ``source_shift``; in training the label equals the source for a
  ``bias_ratio`` share of samples; the test split has the four (label, source) groups in equal
  numbers. Primary metric: ``balanced_auc``.
- ``federated``: every site is one source (its own scanner) with its own label skew: sites
  with an even index have a ``bias_ratio`` share of positives, odd ones of negatives, so the
  site's look is the shortcut. A site's test split is label-balanced. Within a site the bias
  attribute is constant, so aligned/conflicting AUCs exist only federation-wide (pooled from
  the sites' score histograms); the per-site primary metric is ``auc``.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import NormalizeIntensity
from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator
from torch import nn
from torch.utils.data import TensorDataset

from .. import seeding
from ..config import invalid
from ..data.chest import render_radiographs
from ..data.manifest import LabelledImages, check_manifest, load_site_split, read_site_rows
from ..data.scanner import acquire
from ..errors import ConfigError
from ..group_metrics import auc, group_aucs, pooled_group_aucs, score_histograms
from ..losses import balanced_softmax_cross_entropy, generalized_cross_entropy
from ..networks.debiasing_net import DebiasingNet
from ..networks.xray_densenet import FrozenDenseNetDebiasingNet, check_backbone_weights
from ..protocol import MetricKey, StatisticsQuery, TrainConfig
from ..spec import SiteSpec
from ..thresholds import (
    THRESHOLD_BINS,
    bin_centres,
    binned_scores,
    histogram_youden_threshold,
    score_bins,
    youden_threshold,
)
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

#: The scanner fields ``source_shift`` may move (the renderer has no field of view).
SHIFTED_FIELDS = ("gain", "offset", "contrast", "noise", "blur", "bias_field")
# Histograms of the bias models' probability the sites report for a federation threshold:
# per target label (the threshold, the prior) and per known bias (the pseudo-label accuracy).
HISTOGRAMS = ("y0", "y1", "b0", "b1")


class DebiasingArguments(TaskArguments):
    """:class:`DebiasingTask`'s arguments, besides :class:`~sites.tasks.base.TaskArguments`.

    Parameters
    ----------
    image_size : int
        Images are ``image_size`` x ``image_size``.
    channels, strides : list of int
        MONAI ``Classifier`` levels (shared by the main and the bias-capturing models).
    num_res_units : int
        Residual units per level.
    method : str
        One of ``erm``, ``pbbl``, ``bias_balanced_oracle``.
    arrangement : str
        ``source_biased`` or ``federated`` (see the module docstring).
    bias_ratio : float
        Share of bias-aligned training samples, in [0.5, 1).
    q : float
        GCE exponent, in (0, 1].
    pseudo_label_repeats : int
        Number of bias-capturing models whose mean probability gives the pseudo labels.
    source_shift : dict
        Scanner field (``gain``, ``offset``, ``contrast``, ``noise``, ``blur``, ``bias_field``)
        -> what is added to the site's value for source 1 (``source_biased`` only).
    pseudo_threshold : str
        ``federation``: the Youden-J point of the sites' summed probability histograms;
        ``site``: each site's own Youden-J point.
    pseudo_label_rounds : int
        Rounds of pseudo labelling; in each after the first, fresh bias models learn the
        previous round's pseudo labels (the reference implementation's iterative re-labelling).
    manifest : str or None
        CSV manifest of real images (see :mod:`sites.data.manifest`); ``None`` generates data.
    backbone : str or None
        ``None``: MONAI ``Classifier`` networks (``channels``, ``strides``, ``num_res_units``);
        ``densenet121``: heads on one frozen chest X-ray DenseNet-121, PBBL's network
        (:mod:`sites.networks.xray_densenet`).
    backbone_weights : str
        With ``backbone=densenet121``: ``xrv`` (torchxrayvision's cache), a state-dict file,
        or ``none`` (random initialisation); checked to be readable now, never downloaded.
    """

    image_size: PositiveInt
    channels: list[PositiveInt]
    strides: list[PositiveInt]
    num_res_units: NonNegativeInt
    method: Literal["erm", "pbbl", "bias_balanced_oracle"]
    arrangement: Literal["source_biased", "federated"]
    bias_ratio: Annotated[float, Field(ge=0.5, lt=1)]
    q: Annotated[float, Field(gt=0, le=1)]
    pseudo_label_repeats: PositiveInt
    source_shift: dict[str, float]
    pseudo_threshold: Literal["federation", "site"] = "federation"
    pseudo_label_rounds: PositiveInt = 1
    manifest: str | None = None
    backbone: Literal["densenet121"] | None = None
    backbone_weights: str = "xrv"

    @field_validator("source_shift")
    @classmethod
    def _scanner_fields(cls, shift: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(shift) - set(SHIFTED_FIELDS))
        if unknown:
            raise invalid("", f"unknown scanner fields {unknown} (known: {list(SHIFTED_FIELDS)})")
        return shift

    @model_validator(mode="after")
    def _weights_readable(self) -> Self:
        if self.backbone is not None:
            try:
                check_backbone_weights(self.backbone_weights)
            except ConfigError as error:
                raise invalid("backbone_weights", error.problem) from None
        return self


class DebiasingTask(Task, ReplayCodec, ClassLogits, LabelCorruption, ReferenceData, PhaseStatistics):
    """Binary opacity classification under a label-correlated source bias. Its arguments:
    :class:`DebiasingArguments`.

    Shapes: images ``(N, 1, S, S)`` float; labels and bias ``(N,)`` int64 (bias -1 if unknown);
    network output ``(N, 2)`` logits.
    """

    arguments = DebiasingArguments

    def __init__(self, image_size: int, channels: list[int], strides: list[int], num_res_units: int,
                 method: str, arrangement: str, bias_ratio: float, q: float, pseudo_label_repeats: int,
                 source_shift: dict[str, float], pseudo_threshold: str, pseudo_label_rounds: int,
                 manifest: str | None, backbone: str | None, backbone_weights: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.image_size, self.channels, self.strides = image_size, tuple(channels), tuple(strides)
        self.num_res_units = num_res_units
        self.method, self.arrangement = method, arrangement
        self.bias_ratio, self.q, self.repeats = bias_ratio, q, pseudo_label_repeats
        self.threshold, self.rounds = pseudo_threshold, pseudo_label_rounds
        self.source_shift = source_shift
        self.manifest = None if manifest is None else Path(manifest)
        self.backbone = backbone
        self.backbone_weights = None if backbone is None else backbone_weights
        self.primary_metric = "balanced_auc" if arrangement == "source_biased" else "auc"

    # --- model and phases -------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        num_bias_models = self.repeats * self.rounds if self.method == "pbbl" else 0
        if self.backbone == "densenet121":
            return FrozenDenseNetDebiasingNet(num_bias_models, self.backbone_weights)
        return DebiasingNet((1, self.image_size, self.image_size), self.channels, self.strides,
                            self.num_res_units, num_bias_models=num_bias_models)

    @property
    def phases(self) -> list[Phase]:
        """``bias-k`` trains bias model k (those of round r are ``r * repeats`` on); a phase
        that uses pseudo labels with a federation threshold first gathers the histograms."""
        if self.method == "erm":
            return [Phase("train")]
        federation = self.threshold == "federation"
        bias_phases = [Phase(f"bias-{k}", statistics=federation and self._labellers(f"bias-{k}") is not None)
                       for k in range(self.repeats * self.rounds)] if self.method == "pbbl" else []
        return [*bias_phases, Phase("debias", statistics=True)]

    def _labellers(self, phase: str) -> range | None:
        """The bias models whose pseudo labels ``phase`` uses: the last round's in ``debias``,
        the previous round's in a later round's bias phase; ``None`` where it uses none."""
        if self.method != "pbbl":
            return None
        labelling_round = self.rounds if phase == "debias" else int(phase.split("-")[1]) // self.repeats
        if labelling_round == 0:
            return None
        return range((labelling_round - 1) * self.repeats, labelling_round * self.repeats)

    # --- data -------------------------------------------------------------------------------

    def check_sites(self, sites: Sequence[SiteSpec]) -> None:
        refuse_field_of_view(sites, "debiasing")
        if self.manifest is not None:
            check_manifest(self.manifest, [site.id for site in sites], read_site_rows)

    def load_site(self, site: SiteSpec, seed: int) -> SiteData:
        if self.manifest is not None:
            splits = load_site_split(self.manifest, site.id, self.image_size, seeding.numpy_rng(seed, site.index))
        else:
            splits = tuple(self._generate(site, seed, split)
                           for split in (seeding.Stream.DATA_TRAIN, seeding.Stream.DATA_TEST))
        train, test = (TensorDataset(*(torch.from_numpy(a) for a in (s.images, s.labels, s.bias))) for s in splits)
        for name, split in zip(("training", "test"), splits):
            if split.labels.min() == split.labels.max():
                raise ValueError(f"{name} labels are all {split.labels[0]}; a site needs both classes")
        test_split = splits[1]
        if self.arrangement == "source_biased" and not all(
                ((test_split.labels == y) & (test_split.bias == b)).any() for y in (0, 1) for b in (0, 1)):
            raise ValueError("arrangement=source_biased needs every (label, bias) group, with known bias, "
                             "in the test split")
        if self.method == "bias_balanced_oracle" and (splits[0].bias < 0).any():
            raise ValueError("task.method=bias_balanced_oracle needs a known bias for every training row")
        return SiteData(train=train, test=test)

    def reference_data(self, site: SiteSpec, seed: int) -> TensorDataset:
        if self.manifest is not None:
            raise cannot_generate(self)
        split = self._generate(site, seed, seeding.Stream.DATA_REFERENCE)
        return TensorDataset(*(torch.from_numpy(a) for a in (split.images, split.labels, split.bias)))

    def corrupt_labels(self, data: TensorDataset) -> TensorDataset:
        """Inverted labels: every opacity called clear and every clear lung an opacity."""
        images, labels, bias = data.tensors
        return TensorDataset(images, 1 - labels, bias)

    def logits(self, model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        return model(batch[0])

    def targets(self, batch: list[torch.Tensor]) -> torch.Tensor:
        return batch[1]

    def _composition(self, site: SiteSpec, n: int, split: seeding.Stream) -> tuple[np.ndarray, np.ndarray]:
        """Exact (label, bias) counts: the stated ratio, at least one conflicting sample."""
        if split == seeding.Stream.DATA_TEST:
            if self.arrangement == "source_biased":
                groups = np.arange(n) % 4
                return groups // 2, groups % 2
            site_bias = 1 - site.index % 2
            return np.arange(n) % 2, np.full(n, site_bias)
        conflicting = min(n - 1, max(1, n - round(self.bias_ratio * n)))
        aligned = np.arange(n) >= conflicting
        if self.arrangement == "source_biased":
            bias = np.arange(n) % 2
        else:
            bias = np.full(n, 1 - site.index % 2)
        return np.where(aligned, bias, 1 - bias), bias

    def _generate(self, site: SiteSpec, seed: int, split: seeding.Stream) -> LabelledImages:
        n = (site.n_test or self.n_test) if split == seeding.Stream.DATA_TEST else (site.n_train or self.n_train)
        rng = seeding.numpy_rng(seed, site.index, split, 0)
        labels, bias = self._composition(site, n, split)
        order = rng.permutation(n)
        labels, bias = labels[order].astype(np.int64), bias[order].astype(np.int64)
        # An opacity is always denser than lung: only the size of the site's contrast matters here.
        intensities = render_radiographs(labels, self.image_size, abs(site.scanner.contrast), rng)
        images = np.empty((n, 1, self.image_size, self.image_size), dtype=np.float32)
        for source in (0, 1):
            chosen = bias == source if self.arrangement == "source_biased" else np.full(n, source == 0)
            if chosen.any():
                images[chosen] = acquire(intensities[chosen], self._scanner(site, source),
                                         seeding.numpy_rng(seed, site.index, split, 1 + source))
        images = np.asarray(NormalizeIntensity(channel_wise=True)(images[:, 0]), dtype=np.float32)[:, None]
        return LabelledImages(images, labels, bias)

    def _scanner(self, site: SiteSpec, source: int):
        if source == 0:
            return site.scanner
        return site.scanner.replace(**{k: getattr(site.scanner, k) + v for k, v in self.source_shift.items()})

    # --- training ---------------------------------------------------------------------------

    def bias_probability(self, model: DebiasingNet, images: torch.Tensor, models: range) -> np.ndarray:
        """``(N,)`` mean probability of class 1 of the bias models ``models``."""
        model.eval()
        with torch.no_grad(), self.compute.placed(model), self.compute.autocast():
            return model.bias_probability(images.to(self.compute.device), models).float().cpu().numpy()

    def pseudo_bias(self, model: DebiasingNet, data: TensorDataset, models: range,
                    threshold: float | None = None) -> torch.Tensor:
        """Pseudo bias labels of ``data``: the mean probability of the bias models ``models``
        above ``threshold`` (the federation's, compared with each probability's histogram bin
        centre) or, with ``None``, above the site's own Youden-J point against the target label."""
        probability = self.bias_probability(model, data.tensors[0], models)
        if threshold is None:
            threshold = youden_threshold(probability, data.tensors[1].numpy())
        else:
            probability = binned_scores(probability)
        return torch.from_numpy(probability > threshold).long()

    def _groups(self, model: DebiasingNet, data: TensorDataset, phase: str,
                entries: Mapping[str, Any]) -> torch.Tensor:
        """The pseudo bias labels ``phase`` uses (the known bias for the oracle)."""
        if self.method != "pbbl":
            return data.tensors[2]
        threshold = entries["pseudo-threshold"] if self.threshold == "federation" else None
        return self.pseudo_bias(model, data, self._labellers(phase), threshold)

    def training_data(self, model: nn.Module, data: TensorDataset, config: TrainConfig) -> TensorDataset:
        """In the debias phase the third tensor becomes the group: the pseudo bias (pbbl) or
        the known bias (oracle); in a later round's bias phase the previous round's pseudo
        bias replaces the target."""
        images, labels, bias = data.tensors
        if config.phase == "debias":
            groups = self._groups(model, data, config.phase, config.entries)
            if (groups < 0).any():
                raise ValueError("the bias-balanced oracle needs the true bias of every training sample; "
                                 "replayed samples have none")
            return TensorDataset(images, labels, groups)
        if self._labellers(config.phase) is not None:
            return TensorDataset(images, self._groups(model, data, config.phase, config.entries), bias)
        return data

    # --- replay -----------------------------------------------------------------------------

    replay_classes = 2

    @property
    def replay_shape(self) -> tuple[int, ...]:
        return 1, self.image_size, self.image_size

    def encode_replay(self, data: TensorDataset) -> tuple[torch.Tensor, torch.Tensor | None]:
        return to_replay_range(data.tensors[0]), data.tensors[1]

    def decode_replay(self, x: torch.Tensor, classes: torch.Tensor | None) -> TensorDataset:
        return TensorDataset(from_replay_range(x), classes, torch.full_like(classes, -1))

    def batch_loss(self, model: nn.Module, batch: list[torch.Tensor], config: TrainConfig) -> torch.Tensor:
        images, labels, groups = batch
        phase = config.phase
        if phase == "train":
            return F.cross_entropy(model(images), labels)
        if phase.startswith("bias-"):
            return generalized_cross_entropy(model.bias[int(phase.split("-")[1])](images), labels, self.q)
        if phase == "debias":
            log_prior = torch.tensor(config.entries["log-prior"], dtype=torch.float32,
                                     device=images.device).reshape(2, 2)
            return balanced_softmax_cross_entropy(model(images), labels, groups, log_prior)
        raise ValueError(f"unknown phase {phase!r}")

    def site_statistics(self, model: nn.Module, data: SiteData, query: StatisticsQuery) -> dict[str, float]:
        """With a federation threshold, histograms (:data:`HISTOGRAMS`, ``p-<name>-<bin>``) of
        the bias models' probability on the training split; otherwise its label x (pseudo) bias
        counts and how many pseudo labels match a known bias."""
        images, labels, bias = data.train.tensors
        if self.method == "pbbl" and self.threshold == "federation":
            bins = score_bins(self.bias_probability(model, images, self._labellers(query.phase)))
            members = {"y0": labels == 0, "y1": labels == 1, "b0": bias == 0, "b1": bias == 1}
            return {f"p-{name}-{k:03d}": float(count) for name in HISTOGRAMS
                    for k, count in enumerate(np.bincount(bins[members[name].numpy()], minlength=THRESHOLD_BINS))}
        groups = self._groups(model, data.train, query.phase, {})
        counts = {f"n-b{b}-y{y}": float(((groups == b) & (labels == y)).sum()) for b in (0, 1) for y in (0, 1)}
        known = bias >= 0
        counts["pseudo-known"] = float(known.sum())
        counts["pseudo-correct"] = float((groups[known] == bias[known]).sum())
        return counts

    def _federation_counts(self, totals: Mapping[str, float]) -> tuple[float, dict[str, float]]:
        """The Youden-J point of the summed histograms, and the counts the sites would report
        with it (those of :meth:`site_statistics` without a federation threshold)."""
        hist = {name: np.array([totals[f"p-{name}-{k:03d}"] for k in range(THRESHOLD_BINS)]) for name in HISTOGRAMS}
        threshold = histogram_youden_threshold(hist["y1"], hist["y0"])
        above = bin_centres() > threshold
        counts = {f"n-b{b}-y{y}": float(hist[f"y{y}"][above if b else ~above].sum()) for b in (0, 1) for y in (0, 1)}
        counts["pseudo-known"] = float(hist["b0"].sum() + hist["b1"].sum())
        counts["pseudo-correct"] = float(hist["b1"][above].sum() + hist["b0"][~above].sum())
        return threshold, counts

    def phase_config(self, phase: str, totals: Mapping[str, float]) -> dict[str, Any]:
        """``pseudo-threshold`` (federation threshold): the Youden-J point of the summed
        histograms; ``log-prior`` (``debias``): log p(y | b) from the summed counts, add-one
        smoothed, row-major (b, y)."""
        entries: dict[str, Any] = {}
        if self.method == "pbbl" and self.threshold == "federation":
            entries["pseudo-threshold"], totals = self._federation_counts(totals)
        if phase == "debias":
            counts = np.array([[totals[f"n-b{b}-y{y}"] for y in (0, 1)] for b in (0, 1)]) + 1.0
            entries["log-prior"] = np.log(counts / counts.sum(axis=1, keepdims=True)).ravel().tolist()
        return entries

    # --- evaluation -------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: TensorDataset) -> dict[str, float | list[float]]:
        model.eval()
        images, labels, bias = data.tensors
        scores = model(images).softmax(dim=1)[:, 1].float().cpu().numpy()
        labels, bias = labels.cpu().numpy(), bias.cpu().numpy()
        predicted = scores > 0.5
        # Every site reports the same keys (Flower's aggregation requires it): group results as
        # counts, group AUCs only where every site has every group (source_biased, checked at load).
        metrics: dict[str, float | list[float]] = {
            MetricKey.NUM_EXAMPLES: len(labels),
            "accuracy": float((predicted == labels).mean()),
            "auc": auc(scores, labels),
        }
        if self.arrangement == "source_biased":
            metrics.update(group_aucs(scores, labels, bias))
        for y in (0, 1):
            for b in (0, 1):
                group = (labels == y) & (bias == b)
                metrics[f"n-y{y}-b{b}"] = float(group.sum())
                metrics[f"correct-y{y}-b{b}"] = float((predicted[group] == y).sum())
        metrics.update(score_histograms(scores, labels, bias))
        return metrics

    def pool_metrics(self, site_metrics: Mapping[str, Mapping[str, Any]],
                     statistics: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        """Federation-wide group AUCs and group accuracies, and (pbbl) the accuracy of the pseudo
        bias labels."""
        pooled = pooled_group_aucs(site_metrics.values())
        for y in (0, 1):
            for b in (0, 1):
                n = sum(m[f"n-y{y}-b{b}"] for m in site_metrics.values())
                if n:
                    pooled[f"acc-y{y}-b{b}"] = sum(m[f"correct-y{y}-b{b}"] for m in site_metrics.values()) / n
        counts = statistics.get("debias", {})
        if self.method == "pbbl" and self.threshold == "federation" and counts:
            counts = self._federation_counts(counts)[1]
        if self.method == "pbbl" and counts.get("pseudo-known"):
            pooled["pseudo_label_accuracy"] = counts["pseudo-correct"] / counts["pseudo-known"]
        return pooled
