"""Simulated site faults: a site that goes down while it trains, and a site that answers badly.

With ``faults.crash_prob=p`` every training call of every site fails with probability ``p``,
drawn from the site's own seed stream and call number, so the same seed fails the same calls.
The failure reaches the server as an error reply with :data:`CRASH_CODE`, Flower's code for a
ClientApp that crashed (what a real site going down looks like); the server goes on with the
replies it got (``server.site_grid``) and retries a stage where no site trained.

With ``faults.bad_reply_prob=p`` a training call of the sites in ``faults.bad_reply_sites``
(default: every site) trains and then spoils its reply with probability ``p``, drawn from a
seed stream of its own: ``nan`` (a diverged site: every floating-point array and the loss are
NaN) and ``shape`` (a site with another architecture: the model's first array has one row
too many) are invalid, and the server leaves them out as it does a crashed site
(``server.reply_check``); ``scale`` (a poisoned site: its update, the arrays sent back minus
those received, times ``bad_reply_scale``) is valid, for studies of robust aggregation.
"""

import math
from typing import Annotated, Any, Literal

import torch
from flwr.common.constant import ErrorCode
from pydantic import Field, NonNegativeInt, PositiveFloat, field_validator

from . import seeding
from .config import ConfigModel
from .protocol import MetricKey
from .spec import SiteId, SiteSpec

#: The error code of a simulated crash: Flower's own for a ClientApp that crashed.
CRASH_CODE = ErrorCode.CLIENT_APP_CRASHED
#: Error replies of a site that went down (its ClientApp crashed, its node is gone), as opposed
#: to a site that failed at its task (any other code): only these may a round go on without.
DOWN_CODES = (ErrorCode.CLIENT_APP_CRASHED, ErrorCode.NODE_UNAVAILABLE)
#: The ``bad_reply`` kinds whose replies the server refuses (``scale`` is a valid reply).
INVALID_REPLIES = ("nan", "shape")

#: A model's arrays by name (a torch state dict).
State = dict[str, torch.Tensor]


class SiteCrash(RuntimeError):
    """A site went down during training (simulated)."""

    code = CRASH_CODE


class FaultConfig(ConfigModel):
    """The ``faults`` config node.

    Parameters
    ----------
    crash_prob : float
        Probability that a site's training call fails, in [0, 1] (1: every call, to test the retries).
    stage_retries : int
        How many times a stage in which no site completed a training call is run again before
        the run stops.
    bad_reply_prob : float
        Probability that a training call of a site in ``bad_reply_sites`` spoils its reply, in [0, 1].
    bad_reply : str
        How: ``nan``, ``shape`` (invalid replies) or ``scale`` (a valid, poisoned one).
    bad_reply_sites : list of str, optional
        The site ids that spoil replies; ``None``: every site.
    bad_reply_scale : float
        The factor ``scale`` multiplies a site's update by (default 100: one such site outweighs
        a stage of honest ones under FedAvg).
    """

    crash_prob: Annotated[float, Field(ge=0, le=1)] = 0.0
    stage_retries: NonNegativeInt = 2
    bad_reply_prob: Annotated[float, Field(ge=0, le=1)] = 0.0
    bad_reply: Literal["nan", "shape", "scale"] = "nan"
    bad_reply_sites: list[SiteId] | None = None
    bad_reply_scale: PositiveFloat = 100.0

    @field_validator("bad_reply", mode="before")
    @classmethod
    def _nan_is_a_kind(cls, value: Any) -> Any:
        # Hydra reads ``faults.bad_reply=nan`` on the command line as the float NaN.
        return "nan" if isinstance(value, float) and math.isnan(value) else value

    @property
    def failing(self) -> list[str]:
        """The keys of the options that make training calls fail (crash, or reply invalidly)."""
        keys = ["crash_prob"] if self.crash_prob > 0 else []
        if self.bad_reply_prob > 0 and self.bad_reply in INVALID_REPLIES:
            keys.append("bad_reply_prob")
        return keys

    def crashes(self, seed: int, site_index: int, call: int) -> bool:
        """Whether the site's training call number ``call`` fails."""
        return (self.crash_prob > 0
                and seeding.numpy_rng(seed, site_index, seeding.Stream.FAULTS, call).random() < self.crash_prob)

    def spoils(self, seed: int, site: SiteSpec, call: int) -> bool:
        """Whether the site's training call number ``call`` spoils its reply."""
        return (self.bad_reply_prob > 0 and (self.bad_reply_sites is None or site.id in self.bad_reply_sites)
                and seeding.numpy_rng(seed, site.index, seeding.Stream.BAD_REPLY, call).random() < self.bad_reply_prob)

    def spoil(self, trained: State, received: State, metrics: dict[str, float]) -> tuple[State, dict[str, float]]:
        """The reply's arrays and metrics spoilt as :attr:`bad_reply` says.

        Parameters
        ----------
        trained : dict
            The site's model after training (its state dict).
        received : dict
            The model the server sent.
        metrics : dict
            The training call's metrics.
        """
        if self.bad_reply == "nan":
            return ({key: torch.full_like(value, float("nan")) if value.is_floating_point() else value
                     for key, value in trained.items()}, {**metrics, MetricKey.TRAIN_LOSS: float("nan")})
        if self.bad_reply == "shape":
            first = next(iter(trained))
            return {**trained, first: torch.cat([trained[first], trained[first][:1]])}, metrics
        return ({key: received[key] + self.bad_reply_scale * (value - received[key]) if value.is_floating_point()
                 else value for key, value in trained.items()}, metrics)
