"""What a strategy needs the sites to do besides the platform's own handlers.

Flower's client-side differential-privacy wrappers put the clipping norm in the training
config and leave the clipping to the sites: a Flower mod around their ``train`` handler.
"""

from flwr.clientapp.mod import adaptiveclipping_mod, fixedclipping_mod
from flwr.clientapp.typing import Mod
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    Strategy,
)

from .capabilities import unwrapped

# The adaptive mod also reports whether it clipped (one bit, which the adaptive wrapper
# counts with noise); the fixed wrapper must not receive it.
_CLIPPING_MODS = {
    DifferentialPrivacyClientSideFixedClipping: fixedclipping_mod,
    DifferentialPrivacyClientSideAdaptiveClipping: adaptiveclipping_mod,
}


def train_mods(strategy: Strategy) -> list[Mod]:
    """The Flower mods the sites' ``train`` handler runs for ``strategy`` (or a strategy it wraps)."""
    return [mod for inner in unwrapped(strategy) for cls, mod in _CLIPPING_MODS.items() if isinstance(inner, cls)]
