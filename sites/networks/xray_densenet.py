"""PBBL's classifiers: one frozen DenseNet-121 chest X-ray backbone (torchxrayvision's
``densenet121-res224-all``) under a trainable 1024 -> 512 -> 512 -> 2 head per classifier.

The backbone is MONAI's ``DenseNet121`` (the same architecture: growth 32, blocks 6-12-24-16,
one input channel), so the network builds without torchxrayvision; its weights come from
``backbone_weights``:

- ``xrv``: torchxrayvision's own cache (``~/.torchxrayvision/models_data/``), which needs the
  package (``pip install 'medsites[xray]'``) and the weights fetched beforehand; nothing is
  downloaded at run time;
- a file path: a DenseNet-121 state dict saved with ``torch.save`` (torchvision's, torchxrayvision's
  or MONAI's key names; only the ``features.*`` keys are read);
- ``none``: random initialisation (tests).

Images reach the backbone min-max scaled to torchxrayvision's range [-1024, 1024]; as the scaling
ignores any affine change of intensity, a z-scored image gets the values torchxrayvision's
``normalize(image, 255)`` gives the 8-bit image it came from when that image spans 0 to 255.
"""

import re
from functools import partial
from pathlib import Path

import torch
from monai.networks.nets import DenseNet121
from torch import nn

from ..errors import ConfigError

KEY = "task.backbone_weights"
XRV_WEIGHTS = "densenet121-res224-all"
XRV_CACHE = Path("~/.torchxrayvision/models_data").expanduser()
#: The file torchxrayvision stores ``densenet121-res224-all`` in (its download URL's name).
XRV_FILE = "nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt"
#: torchvision's (and torchxrayvision's) dense-layer keys, as MONAI names them with ``layers``.
_DENSE_LAYER = re.compile(r"^(features\.denseblock\d+\.denselayer\d+)\.((?:norm|conv)\d\..+)$")
FEATURES = 1024
XRV_RANGE = 1024.0


def check_backbone_weights(weights: str) -> str:
    """``weights`` when it can be read now: ``xrv`` with the weights in torchxrayvision's cache,
    an existing file, or ``none``; otherwise a one-line ``ConfigError`` naming the key."""
    if weights == "none":
        return weights
    if weights == "xrv":
        if not (XRV_CACHE / XRV_FILE).is_file():
            raise ConfigError(KEY, f"xrv: torchxrayvision's {XRV_WEIGHTS} weights are not in its cache "
                                   f"({XRV_CACHE / XRV_FILE}); fetch them once with torchxrayvision "
                                   f"(xrv.models.DenseNet(weights='{XRV_WEIGHTS}')), or give a state-dict file")
        return weights
    if not Path(weights).expanduser().is_file():
        raise ConfigError(KEY, f"no such file: {weights} (expected xrv, none or a DenseNet-121 state-dict file)")
    return weights


def _xrv_state_dict() -> dict[str, torch.Tensor]:
    try:
        import torchxrayvision as xrv
    except ImportError:
        raise ConfigError(KEY, "xrv needs torchxrayvision: pip install 'medsites[xray]'") from None
    # The file is in the cache (checked), so torchxrayvision reads it and downloads nothing.
    return xrv.models.DenseNet(weights=XRV_WEIGHTS, cache_dir=str(XRV_CACHE)).state_dict()


def backbone_state_dict(weights: str) -> dict[str, torch.Tensor] | None:
    """The ``features.*`` weights ``weights`` names, in MONAI's key names; ``None`` for ``none``."""
    if weights == "none":
        return None
    if weights == "xrv":
        state = _xrv_state_dict()
    else:
        try:
            state = torch.load(Path(weights).expanduser(), map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises unpickling errors of several types
            raise ConfigError(KEY, f"{weights} is not a state dict torch can read: {error}") from None
    if not isinstance(state, dict) or not any(key.startswith("features.") for key in state):
        raise ConfigError(KEY, f"{weights}: no features.* keys of a DenseNet-121 state dict")
    return {_DENSE_LAYER.sub(r"\1.layers.\2", key): value for key, value in state.items()
            if key.startswith("features.")}


def head() -> nn.Sequential:
    """PBBL's classifier head on the 1024 pooled features."""
    return nn.Sequential(nn.Linear(FEATURES, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 2))


class FrozenDenseNetDebiasingNet(nn.Module):
    """The main classifier and ``num_bias_models`` bias-capturing classifiers, each a head on one
    shared frozen DenseNet-121 backbone (kept in eval mode: its batch statistics never change).

    Parameters
    ----------
    num_bias_models : int
        How many bias-capturing classifiers (0 for plain training).
    weights : str
        ``xrv``, a state-dict file or ``none`` (see the module docstring).

    Shapes: input ``(N, 1, H, W)``; :meth:`forward` returns the main classifier's logits
    ``(N, 2)``; ``bias[k](images)`` bias model k's; :meth:`bias_probability` ``(N,)``.
    """

    def __init__(self, num_bias_models: int, weights: str) -> None:
        super().__init__()
        self.backbone = DenseNet121(spatial_dims=2, in_channels=1, out_channels=2).features
        state = backbone_state_dict(weights)
        if state is not None:
            self.backbone.load_state_dict({key.removeprefix("features."): value for key, value in state.items()})
        self.backbone.requires_grad_(False)
        self.main = head()
        self.bias_heads = nn.ModuleList(head() for _ in range(num_bias_models))

    def train(self, mode: bool = True) -> "FrozenDenseNetDebiasingNet":
        super().train(mode)
        self.backbone.eval()
        return self

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 1024)``: the backbone's pooled features of the images scaled to [-1024, 1024]."""
        low = images.amin(dim=(1, 2, 3), keepdim=True)
        span = (images.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-6)
        with torch.no_grad():
            features = self.backbone((images - low) / span * (2 * XRV_RANGE) - XRV_RANGE)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(torch.relu(features), 1), 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.main(self.features(images))

    def _bias_logits(self, k: int, images: torch.Tensor) -> torch.Tensor:
        return self.bias_heads[k](self.features(images))

    @property
    def bias(self) -> list:
        """Bias model k's logits as ``bias[k](images)``, as :class:`~sites.networks.debiasing_net.DebiasingNet`'s."""
        return [partial(self._bias_logits, k) for k in range(len(self.bias_heads))]

    def bias_probability(self, images: torch.Tensor, models: range | None = None) -> torch.Tensor:
        """Mean over the bias heads ``models`` (default all) of their probability of class 1."""
        features = self.features(images)
        chosen = range(len(self.bias_heads)) if models is None else models
        return torch.stack([self.bias_heads[k](features).softmax(dim=1)[:, 1] for k in chosen]).mean(dim=0)
