"""Prostate-like organ segmentation in 2D slices (docs/design.md#data) with MONAI's UNet."""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks.nets import UNet
from monai.networks.utils import one_hot
from monai.transforms import NormalizeIntensity
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator
from torch import nn
from torch.utils.data import TensorDataset

from .. import seeding
from ..config import invalid
from ..data.manifest import check_manifest
from ..data.prostate import sample_anatomy
from ..data.scanner import acquire
from ..data.segmentation_manifest import Slicing, load_site_slices, read_site_cases
from ..protocol import MetricKey, TrainConfig
from ..spec import SiteSpec
from .base import SiteData, Task, TaskArguments
from .capabilities import (
    ClassLogits,
    LabelCorruption,
    ReferenceData,
    ReplayCodec,
    cannot_generate,
    from_replay_range,
    to_replay_range,
)


class SegmentationArguments(TaskArguments):
    """:class:`SegmentationTask`'s arguments, besides :class:`~sites.tasks.base.TaskArguments`.

    Parameters
    ----------
    image_size : int
        Slices are ``image_size`` x ``image_size`` pixels, divisible by the product of ``strides``.
    channels : list of int
        UNet feature channels per level.
    strides : list of int
        UNet downsampling strides (one fewer than ``channels``).
    num_res_units : int
        Residual units per UNet block.
    n_validation : int
        Validation slices per site (synthetic data), for choosing settings
        (``evaluate_split=validation``); with ``manifest`` the rows it names ``validation``.
        A default, so that a saved run config without the key (``resume=``, ``--config-path``) still builds.
    corruption_radius : int
        Pixels by which an unreliable site's masks are dilated (``corrupt_labels`` sites).
    manifest : str or None
        CSV manifest of image and mask files (see :mod:`sites.data.segmentation_manifest`);
        ``None`` generates data.
    slice_axis : int
        With ``manifest``: the volumes' axis, after reorienting to RAS, that slices are cut
        along (0 sagittal, 1 coronal, 2 axial).
    empty_slices : float
        With ``manifest``: share of each case's slices without foreground that are kept
        (seeded), in [0, 1]; every slice with foreground is kept.
    label_values : list of int or None
        With ``manifest``: the mask values that are foreground (non-zero); ``None``: any
        non-zero value, in masks that hold a single one.
    pixel_spacing : list of float or None
        With ``manifest``: the in-plane spacing (mm, two positive numbers) volumes are
        resampled to before resizing; ``None``: their own.
    zscore : str
        With ``manifest``: ``slice`` (each slice on its own) or ``volume`` (each slice with its
        volume's mean and deviation, as the multi-site prostate papers' code does).
    """

    image_size: PositiveInt
    channels: Annotated[list[PositiveInt], Field(min_length=1)]
    strides: list[PositiveInt]
    num_res_units: NonNegativeInt
    n_validation: PositiveInt = 48
    corruption_radius: PositiveInt = 3
    manifest: str | None = None
    slice_axis: Annotated[int, Field(ge=0, le=2)] = 2
    empty_slices: Annotated[float, Field(ge=0, le=1)] = 0.1
    label_values: Annotated[list[int], Field(min_length=1)] | None = None
    pixel_spacing: Annotated[list[PositiveFloat], Field(min_length=2, max_length=2)] | None = None
    zscore: Literal["slice", "volume"] = "slice"

    @model_validator(mode="after")
    def _fits_the_network(self) -> Self:
        if len(self.strides) != len(self.channels) - 1:
            raise invalid("strides", f"needs len(channels) - 1 = {len(self.channels) - 1} entries "
                                     f"(got {len(self.strides)})")
        if self.image_size % math.prod(self.strides) != 0:
            raise invalid("image_size", f"must be divisible by the product of strides {self.strides} "
                                        f"(got {self.image_size})")
        if self.label_values is not None and 0 in self.label_values:
            raise invalid("label_values", f"must be non-zero: 0 is the background (got {self.label_values})")
        return self


class SegmentationTask(Task, ReplayCodec, ClassLogits, LabelCorruption, ReferenceData):
    """Binary organ segmentation, scored by Dice. Its arguments: :class:`SegmentationArguments`.

    Shapes: images ``(N, 1, H, W)`` float, z-scored per image; masks ``(N, 1, H, W)`` int64
    in {0, 1}; network output ``(N, 2, H, W)`` logits.
    """

    primary_metric = "dice"
    validation_split = True
    arguments = SegmentationArguments

    def __init__(self, image_size: int, channels: list[int], strides: list[int], num_res_units: int,
                 n_validation: int, corruption_radius: int, manifest: str | None, slice_axis: int,
                 empty_slices: float, label_values: list[int] | None, pixel_spacing: list[float] | None,
                 zscore: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_validation = n_validation
        self.image_size = image_size
        self.channels, self.strides = tuple(channels), tuple(strides)
        self.num_res_units = num_res_units
        self.corruption_radius = corruption_radius
        self.manifest = None if manifest is None else Path(manifest)
        self.slicing = Slicing(image_size, slice_axis, empty_slices,
                               None if label_values is None else tuple(label_values),
                               None if pixel_spacing is None else tuple(float(v) for v in pixel_spacing), zscore)
        self._loss = DiceCELoss(to_onehot_y=True, softmax=True)
        self._normalize = NormalizeIntensity()

    def build_model(self) -> nn.Module:
        return UNet(
            spatial_dims=2,
            in_channels=1,
            out_channels=2,
            channels=self.channels,
            strides=self.strides,
            num_res_units=self.num_res_units,
        )

    def _split(self, site: SiteSpec, seed: int, n: int, stream: seeding.Stream) -> TensorDataset:
        anatomy = sample_anatomy(n, self.image_size, seeding.numpy_rng(seed, site.index, stream, 0),
                                 site.scanner.field_of_view)
        images = acquire(anatomy.render(site.scanner.contrast), site.scanner,
                         seeding.numpy_rng(seed, site.index, stream, 1))
        images = np.stack([np.asarray(self._normalize(image)) for image in images])
        masks = anatomy.organ_mask[:, None].astype(np.int64)
        return TensorDataset(torch.from_numpy(images), torch.from_numpy(masks))

    def check_sites(self, sites: Sequence[SiteSpec]) -> None:
        if self.manifest is not None:
            check_manifest(self.manifest, [site.id for site in sites], read_site_cases)

    def load_site(self, site: SiteSpec, seed: int) -> SiteData:
        if self.manifest is not None:
            splits = {name: TensorDataset(*(torch.from_numpy(a) for a in arrays)) for name, arrays in
                      load_site_slices(self.manifest, site.id, self.slicing,
                                       seeding.numpy_rng(seed, site.index)).items()}
            return SiteData(train=splits["train"], test=splits["test"], validation=splits.get("validation"))
        return SiteData(
            train=self._split(site, seed, site.n_train or self.n_train, seeding.Stream.DATA_TRAIN),
            test=self._split(site, seed, site.n_test or self.n_test, seeding.Stream.DATA_TEST),
            validation=self._split(site, seed, self.n_validation, seeding.Stream.DATA_VALIDATION),
        )

    def batch_loss(self, model: nn.Module, batch: list[torch.Tensor], config: TrainConfig) -> torch.Tensor:
        images, masks = batch
        return self._loss(model(images), masks)

    def reference_data(self, site: SiteSpec, seed: int) -> TensorDataset:
        if self.manifest is not None:
            raise cannot_generate(self)
        return self._split(site, seed, site.n_train or self.n_train, seeding.Stream.DATA_REFERENCE)

    def corrupt_labels(self, data: TensorDataset) -> TensorDataset:
        """Over-contouring: every mask dilated by ``corruption_radius`` pixels (a square
        structuring element), as a rater who systematically draws outside the organ would."""
        images, masks = data.tensors
        width = 2 * self.corruption_radius + 1
        dilated = F.max_pool2d(masks.float(), width, stride=1, padding=self.corruption_radius)
        return TensorDataset(images, dilated.to(masks.dtype))

    replay_classes = 0

    @property
    def replay_shape(self) -> tuple[int, ...]:
        return 2, self.image_size, self.image_size

    def encode_replay(self, data: TensorDataset) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Image and mask generated together: channel 0 the image, channel 1 the mask as +-1."""
        images, masks = data.tensors
        return torch.cat([to_replay_range(images), 2.0 * masks.float() - 1.0], dim=1), None

    def decode_replay(self, x: torch.Tensor, classes: torch.Tensor | None) -> TensorDataset:
        return TensorDataset(from_replay_range(x[:, :1]), (x[:, 1:] > 0).long())

    def logits(self, model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        return model(batch[0])

    def targets(self, batch: list[torch.Tensor]) -> torch.Tensor:
        return batch[1][:, 0]

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: TensorDataset) -> dict[str, float]:
        model.eval()
        metric = DiceMetric(include_background=False, reduction="mean")
        images, masks = data.tensors
        for start in range(0, len(images), 64):
            logits = model(images[start:start + 64])
            prediction = one_hot(logits.argmax(dim=1, keepdim=True), num_classes=2)
            metric(y_pred=prediction, y=one_hot(masks[start:start + 64], num_classes=2))
        return {"dice": float(metric.aggregate().item()), MetricKey.NUM_EXAMPLES: len(images)}
