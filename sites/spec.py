"""The description of one hospital: who it is, how its scanner renders anatomy, how much data it has."""

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from .config import ConfigModel

#: A site id; a number in YAML (``id: 1``) is read as its text.
SiteId = Annotated[str, Field(strict=False, coerce_numbers_to_str=True)]
# The strength of a scanner effect: finite, 0 disables it.
_Strength = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ScannerSignature(ConfigModel):
    """How a site's scanner turns the same anatomy into different images.

    Parameters
    ----------
    gain : float
        Global intensity scale, > 0.
    offset : float
        Global intensity shift, added after the gain.
    contrast : float
        Intensity of the target organ minus that of the tissue around it, before the gain;
        its sign flips between sequences/vendors, which is what makes sites look different.
    noise : float
        Standard deviation of additive Gaussian noise (after the gain).
    blur : float
        Gaussian blur sigma in pixels (0 disables it): resolution and reconstruction kernel.
    bias_field : float
        Upper bound of the polynomial bias-field coefficients (0 disables it): coil
        inhomogeneity.
    field_of_view : float
        Width of the imaged field relative to the reference protocol's (1): above 1 a slice
        shows more of the body around a smaller organ, below 1 a closer view. Only the
        segmentation task's anatomy renders it; the other tasks refuse values other than 1.
    """

    gain: Annotated[float, Field(gt=0)] = 1.0
    offset: float = 0.0
    contrast: float = 0.3
    noise: _Strength = 0.05
    blur: _Strength = 0.0
    bias_field: _Strength = 0.0
    field_of_view: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0


class SiteConfig(ConfigModel):
    """One entry of ``scenario.sites``.

    Parameters
    ----------
    id : str
        Short unique id used in configs, matrices and messages, e.g. ``"A"``.
    name : str
        Human-readable name for reports; the id when not given.
    scanner : ScannerSignature
        The site's acquisition signature.
    n_train, n_test : int or None
        Sample counts; ``None`` takes the task's defaults.
    marker_rate : float
        Share of the site's patients whose images carry an identifying marker (privacy
        scenarios; see :mod:`sites.data.markers`).
    corrupt_labels : bool
        The site's training labels are wrong by the task's fixed rule (an unreliable source;
        :class:`~sites.tasks.capabilities.LabelCorruption`); its test labels stay correct.
    """

    id: SiteId
    name: str
    scanner: ScannerSignature = ScannerSignature()
    n_train: PositiveInt | None = None
    n_test: PositiveInt | None = None
    marker_rate: Annotated[float, Field(ge=0, le=1)] = 0.0
    corrupt_labels: bool = False

    @model_validator(mode="before")
    @classmethod
    def _name_defaults_to_id(cls, config: Any) -> Any:
        if isinstance(config, Mapping) and "name" not in config and "id" in config:
            return {**config, "name": str(config["id"])}
        return config


class SiteSpec(SiteConfig):
    """One hospital of a scenario: its :class:`SiteConfig` and its place in the timeline.

    Parameters
    ----------
    index : int
        Position in the scenario's site list; seeds the site's data stream.
    arrival : int or None
        Stage (1-based) at which the site first trains; ``None`` for held-out sites.
    """

    index: NonNegativeInt
    arrival: PositiveInt | None = None
