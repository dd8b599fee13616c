"""A committee of exported SchNet models evaluated as one model: the written-out engine
(mlpot.kernels.written_out.WrittenOutSchNet) with the members stacked along its member axis,
M > 1 (the members of one `mlpot train` run with training.ensemble: one architecture).

StackedSchNet(modules).forward(positions [N, 3] Å, atomic_numbers [N], edge_index [2, E],
                               shift_vectors [E, 3] Å, n_local: int, compute_virial: bool)
  -> {"energy": [M] eV, "forces": [M, N, 3] eV/Å, "energies": [M, N] eV, "virial": [M, 3, 3] eV}
"""
from typing import Optional

import torch

from mlpot.kernels.written_out import WrittenOutSchNet, stackable

StackedSchNet = WrittenOutSchNet   # the name committees and tests know; one engine


def stacked_committee(modules) -> Optional[torch.jit.ScriptModule]:
    """The scripted engine over the loaded model files `modules` (M > 1), or None where they
    cannot be stacked (stackable says why)."""
    if stackable(modules) is not None:
        return None
    return torch.jit.script(WrittenOutSchNet(list(modules)).eval())


__all__ = ["StackedSchNet", "WrittenOutSchNet", "stackable", "stacked_committee"]
