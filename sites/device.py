"""Where a site's (and the server's) torch work runs: the device and the forward passes' precision.

Models and batches go to :attr:`Compute.device` only inside the few shared loops (local training,
evaluation, the audit's losses); everything else (data, messages, random draws) stays on the CPU,
so the default (``device=cpu``, ``precision=fp32``) computes exactly what a plain CPU loop would,
and random numbers are drawn by the same CPU generators on any device.
"""

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.utils.data import TensorDataset

from .errors import ConfigError

#: Where the run's torch work runs (the ``device`` key): ``auto`` picks CUDA where torch sees a GPU.
Device = Literal["auto", "cpu", "cuda"]
#: A resolved device: what torch is handed.
ResolvedDevice = Literal["cpu", "cuda"]
#: The forward passes' precision (the ``precision`` key).
Precision = Literal["fp32", "bf16"]


@dataclass(frozen=True)
class Compute:
    """A resolved device and precision (see :func:`resolve_compute`).

    Parameters
    ----------
    device : str
        ``"cpu"`` or ``"cuda"`` (a site actor sees the GPU Ray gave it as its ``cuda``).
    precision : str
        ``"fp32"``, or ``"bf16"``: forward passes under :func:`torch.autocast` in bfloat16
        (CUDA only); parameters, gradients and optimizer state stay float32.
    """

    device: ResolvedDevice = "cpu"
    precision: Precision = "fp32"

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context forward passes run in: bfloat16 autocast with ``bf16``, else nothing."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device, dtype=torch.bfloat16)

    def put(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``tensors`` (a batch) on the device."""
        return [tensor.to(self.device) for tensor in tensors]

    def dataset(self, data: TensorDataset) -> TensorDataset:
        """A split on the device, for evaluation in whole-split passes."""
        return TensorDataset(*self.put(data.tensors))

    @contextlib.contextmanager
    def placed(self, *models: nn.Module) -> Iterator[None]:
        """``models`` on the device while the block runs; back on the CPU afterwards (their
        arrays leave in messages as numpy)."""
        for model in models:
            model.to(self.device)
        try:
            yield
        finally:
            for model in models:
                model.to("cpu")


def resolve_compute(device: Device, precision: Precision) -> Compute:
    """The :class:`Compute` of the run's ``device`` and ``precision`` keys.

    ``auto`` picks CUDA when torch sees a GPU, else the CPU. bfloat16 runs on CUDA only: CPU
    autocast would change every number of a CPU run while rarely making it faster.

    Raises
    ------
    ConfigError
        ``device`` for ``cuda`` without a GPU; ``precision`` for ``bf16`` on the CPU.
    """
    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise ConfigError("device", "cuda: torch sees no CUDA GPU on this machine; use device=auto or cpu")
    resolved = "cuda" if device == "cuda" or (device == "auto" and available) else "cpu"
    if precision == "bf16" and resolved == "cpu":
        raise ConfigError("precision", "bf16 autocasts on CUDA only; this run's device is the CPU (use fp32)")
    return Compute(resolved, precision)
