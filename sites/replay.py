"""Replay on the wire: samples of several domains (replayed sites) in one ArrayRecord.

The server sends generated (or, for the real-buffer reference, stored) samples of earlier
sites with the global model; each domain's tensors are in the format of the task's training
split, keyed ``<site>/<k>`` for the k-th tensor.
"""

from collections.abc import Mapping

import torch
from flwr.app import ArrayRecord
from torch.utils.data import TensorDataset


def pack_domains(domains: Mapping[str, TensorDataset]) -> ArrayRecord:
    """One ArrayRecord holding every domain's tensors."""
    return ArrayRecord({f"{site}/{k}": tensor for site, data in domains.items()
                        for k, tensor in enumerate(data.tensors)})


def unpack_domains(record: ArrayRecord) -> dict[str, TensorDataset]:
    """The inverse of :func:`pack_domains` (domains in the order they were packed)."""
    tensors: dict[str, dict[int, torch.Tensor]] = {}
    for key, tensor in record.to_torch_state_dict().items():
        site, k = key.rsplit("/", 1)
        tensors.setdefault(site, {})[int(k)] = tensor
    return {site: TensorDataset(*(parts[k] for k in sorted(parts))) for site, parts in tensors.items()}
