"""Output heads: atomic features [N, F] -> per-atom outputs, aggregated per structure.

Atomwise: one network for all atoms. ElementalAtomwise: one network per element (the
Behler–Parrinello form). Both return per-atom values [N, n_out]; aggregation over
structures happens in the Potential (energies) or in dipole heads.
"""
from typing import Dict, List, Optional

import torch
from torch import nn

from mlpot import keys as K
from mlpot.nn import build_mlp, scatter_add


class Atomwise(nn.Module):
    """y_i = MLP(h_i) [N, n_out]; `aggregate` sums ("sum", extensive) or averages ("mean",
    intensive) per structure [B, n_out]."""

    def __init__(self, n_in: int, n_out: int = 1, n_hidden: Optional[List[int]] = None, n_layers: int = 2):
        super().__init__()
        self.net = build_mlp(n_in, n_out, n_hidden, n_layers)

    def forward(self, features: torch.Tensor, atomic_numbers: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def aggregate(values: torch.Tensor, batch: torch.Tensor, n_structures: int, mode: str = "sum") -> torch.Tensor:
    """Per-atom values [N, ...] -> per-structure sums or means [B, ...]."""
    total = scatter_add(values, batch, n_structures)
    if mode == "mean":
        counts = scatter_add(torch.ones_like(batch, dtype=values.dtype), batch, n_structures)
        shape = [n_structures] + [1] * (values.dim() - 1)
        total = total / counts.clamp(min=1).reshape(shape)
    return total


def n_structures_of(inputs: Dict[str, torch.Tensor]) -> int:
    """Number of structures B in a batch (1 when the batch index is absent)."""
    if K.N_ATOMS in inputs:
        return inputs[K.N_ATOMS].shape[0]
    if K.CELL in inputs and inputs[K.CELL].dim() == 3:
        return inputs[K.CELL].shape[0]
    return 1
