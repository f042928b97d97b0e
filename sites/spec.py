"""The description of one hospital: who it is, how its scanner renders anatomy, how much data it has."""

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class ScannerSignature:
    """How a site's scanner turns the same anatomy into different images.

    Parameters
    ----------
    gain : float
        Global intensity scale.
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
    """

    gain: float = 1.0
    offset: float = 0.0
    contrast: float = 0.3
    noise: float = 0.05
    blur: float = 0.0
    bias_field: float = 0.0

    def check(self) -> None:
        """Raise ``ValueError`` naming the first out-of-range field."""
        if not self.gain > 0:
            raise ValueError(f"scanner.gain must be > 0 (got {self.gain})")
        for name in ("noise", "blur", "bias_field"):
            value = getattr(self, name)
            if not 0 <= value < math.inf:
                raise ValueError(f"scanner.{name} must be a finite number >= 0 (got {value})")


@dataclass(frozen=True)
class SiteSpec:
    """One hospital of a scenario.

    Parameters
    ----------
    id : str
        Short unique id used in configs, matrices and messages, e.g. ``"A"``.
    name : str
        Human-readable name for reports.
    index : int
        Position in the scenario's site list; seeds the site's data stream.
    scanner : ScannerSignature
        The site's acquisition signature.
    n_train, n_test : int or None
        Sample counts; ``None`` takes the task's defaults.
    arrival : int or None
        Stage (1-based) at which the site first trains; ``None`` for held-out sites.
    marker_rate : float
        Share of the site's patients whose images carry an identifying marker (privacy
        scenarios; see :mod:`sites.data.markers`).
    corrupt_labels : bool
        The site's training labels are wrong by the task's fixed rule (an unreliable source;
        :class:`~sites.tasks.capabilities.LabelCorruption`); its test labels stay correct.
    """

    id: str
    name: str
    index: int
    scanner: ScannerSignature = field(default_factory=ScannerSignature)
    n_train: int | None = None
    n_test: int | None = None
    arrival: int | None = None
    marker_rate: float = 0.0
    corrupt_labels: bool = False

    @classmethod
    def from_config(cls, index: int, raw: dict[str, Any]) -> "SiteSpec":
        """Build from one entry of ``scenario.sites``; unknown keys are errors."""
        key = f"scenario.sites.{index}"
        raw = dict(raw)
        if "id" not in raw:
            raise ConfigError(key, "every site needs an 'id'")
        scanner = raw.pop("scanner", {}) or {}
        unknown = set(scanner) - set(ScannerSignature.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"{key}.scanner", f"unknown keys {sorted(unknown)}")
        unknown = set(raw) - {"id", "name", "n_train", "n_test", "marker_rate", "corrupt_labels"}
        if unknown:
            raise ConfigError(key, f"unknown keys {sorted(unknown)}")
        for name, value in scanner.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{key}.scanner.{name}", f"must be a number (got {value!r})")
        signature = ScannerSignature(**{k: float(v) for k, v in scanner.items()})
        try:
            signature.check()
        except ValueError as error:
            raise ConfigError(key, str(error)) from None
        for name in ("n_train", "n_test"):
            value = raw.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{key}.{name}", f"must be an integer >= 1, or null for the task's default "
                                  f"(got {value!r})")
        marker_rate = raw.get("marker_rate", 0.0)
        if not (isinstance(marker_rate, int | float) and 0 <= marker_rate <= 1):
            raise ConfigError(f"{key}.marker_rate", f"must be in [0, 1] (got {marker_rate!r})")
        corrupt_labels = raw.get("corrupt_labels", False)
        if not isinstance(corrupt_labels, bool):
            raise ConfigError(f"{key}.corrupt_labels", f"must be true or false (got {corrupt_labels!r})")
        return cls(
            id=str(raw["id"]),
            name=str(raw.get("name", raw["id"])),
            index=index,
            scanner=signature,
            n_train=raw.get("n_train"),
            n_test=raw.get("n_test"),
            marker_rate=float(marker_rate),
            corrupt_labels=corrupt_labels,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, for messages to Ray actors and for run reports."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "SiteSpec":
        """Inverse of :meth:`to_dict`."""
        raw = dict(raw)
        raw["scanner"] = ScannerSignature(**raw["scanner"])
        return cls(**raw)
