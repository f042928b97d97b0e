"""How the federation unlearns a withdrawing site (docs/design.md#unlearning): the ``unlearning`` config
group names an :class:`UnlearningMethod` by ``_target_``; the built-ins, one module each:

- ``none`` (:class:`NoUnlearning`): keep the model as it is (the do-nothing baseline);
- ``retrain`` (:class:`Retrain`): train the timeline again from the initial model without the
  site (the oracle);
- ``rewind`` (:class:`Rewind`): go back to the checkpoint saved before the site arrived and
  train the stages since then again without it;
- ``ga``, ``graddiff``, ``kl``, ``npo`` (:class:`SiteObjectives`): rounds of the site
  objectives of :mod:`sites.unlearning`;
- ``federaser`` (:class:`FedEraser`): calibrated replay of the stored rounds.

"The checkpoint before the site arrived" is the one saved before the earliest arrival among the
sites gone at this withdrawal (this site and those withdrawn before it), so it holds none of them.
"""

from collections.abc import Mapping
from typing import Any

from sites.config import instantiate

from .base import UnlearningContext, UnlearningMethod
from .federaser import FedEraser, calibrated_step
from .none import NoUnlearning
from .retrain import Retrain
from .rewind import Rewind
from .site_objectives import SiteObjectives

__all__ = ["FedEraser", "NoUnlearning", "Retrain", "Rewind", "SiteObjectives", "UnlearningContext",
           "UnlearningMethod", "build_unlearning", "calibrated_step"]


def build_unlearning(config: Mapping[str, Any]) -> UnlearningMethod:
    """Instantiate ``config['_target_']`` (an :class:`UnlearningMethod`) with the remaining keys
    as arguments."""
    return instantiate(dict(config), "unlearning", UnlearningMethod, "server.unlearning.UnlearningMethod")
