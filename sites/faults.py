"""Simulated site failures: a site that goes down while it trains.

With ``faults.crash_prob=p`` every training call of every site fails with probability ``p``,
drawn from the site's own seed stream and call number, so the same seed fails the same calls.
The failure reaches the server as an error reply with :data:`CRASH_CODE`, Flower's code for a
ClientApp that crashed (what a real site going down looks like); the server goes on with the
replies it got (``server.site_grid``) and retries a stage where no site trained.
"""

from typing import Annotated

from flwr.common.constant import ErrorCode
from pydantic import Field, NonNegativeInt

from . import seeding
from .config import ConfigModel

#: The error code of a simulated crash: Flower's own for a ClientApp that crashed.
CRASH_CODE = ErrorCode.CLIENT_APP_CRASHED
#: Error replies of a site that went down (its ClientApp crashed, its node is gone), as opposed
#: to a site that failed at its task (any other code): only these may a round go on without.
DOWN_CODES = (ErrorCode.CLIENT_APP_CRASHED, ErrorCode.NODE_UNAVAILABLE)


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
    """

    crash_prob: Annotated[float, Field(ge=0, le=1)] = 0.0
    stage_retries: NonNegativeInt = 2

    def crashes(self, seed: int, site_index: int, call: int) -> bool:
        """Whether the site's training call number ``call`` fails."""
        return (self.crash_prob > 0
                and seeding.numpy_rng(seed, site_index, seeding.Stream.FAULTS, call).random() < self.crash_prob)
