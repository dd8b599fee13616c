"""Forces, virial and per-atom virial from the energy's gradient along the edges: the one
assembly that every engine with a written-out chain rule uses (the autograd engines get the same
numbers from autograd; the LAMMPS plugin's C++ mirrors it in mlpot/lammps/csrc/mlpot_model.cpp).

For an edge e = (i, j) with vector r_e = r_j − r_i + S_e (Å) and g_e = ∂E/∂r_e (eV/Å):
  F_i += g_e, F_j −= g_e;   virial = −½ (M + Mᵀ), M = Σ_e r_e ⊗ g_e;
  per-atom virial: −½ r_e ⊗ g_e to both i and j (unsymmetrised: LAMMPS' centroid form; its
  symmetric part is LAMMPS' vatom and its sum over atoms −M).
Leading axes (committee members) are kept: vectors [E, 3], gradients [..., E, 3].
"""
from typing import Tuple

import torch


def gradient_along_edges(vectors: torch.Tensor, grad_d: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """∂E/∂r_e [..., E, 3] from ∂E/∂d_e [..., E] for edge vectors [E, 3] of lengths d [E]; a zero-length
    edge (atoms on top of each other) has r_e = 0 and adds nothing."""
    return vectors * (grad_d.to(d.dtype) / d.clamp(min=1e-30)).unsqueeze(-1)


def forces_of_edges(grad_vectors: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """F [..., n_atoms, 3] eV/Å: +g_e on atom i, −g_e on atom j of every edge."""
    shape = list(grad_vectors.shape[:-2]) + [n_atoms, 3]
    zeros = torch.zeros(shape, dtype=grad_vectors.dtype, device=grad_vectors.device)
    axis = grad_vectors.dim() - 2
    return zeros.index_add(axis, idx_i, grad_vectors).index_add(axis, idx_j, -grad_vectors)


def virial_of_edges(vectors: torch.Tensor, grad_vectors: torch.Tensor) -> torch.Tensor:
    """Virial [..., 3, 3] eV: −½ (M + Mᵀ), M = Σ_e r_e ⊗ g_e."""
    m = torch.matmul(vectors.t(), grad_vectors)
    return -0.5 * (m + m.transpose(-1, -2))


def atom_virial_of_edges(vectors: torch.Tensor, grad_vectors: torch.Tensor, idx_i: torch.Tensor,
                         idx_j: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """Per-atom virial [..., n_atoms, 3, 3] eV: −½ r_e ⊗ g_e to both atoms of every edge e = (i, j),
    for edge vectors r_e [E, 3] and g_e = ∂E/∂r_e [..., E, 3]. Unsymmetrised (LAMMPS' centroid
    form); its symmetric part is LAMMPS' per-atom virial (vatom), and its sum over atoms −Σ_e r_e ⊗ g_e."""
    half = -0.5 * vectors[:, :, None] * grad_vectors[..., None, :]
    zeros = torch.zeros(list(half.shape[:-3]) + [n_atoms, 3, 3], dtype=half.dtype, device=half.device)
    axis = half.dim() - 3
    return zeros.index_add(axis, idx_i, half).index_add(axis, idx_j, half)


def forces_and_virial(vectors: torch.Tensor, grad_vectors: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
                      n_atoms: int, compute_virial: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """(forces [..., n_atoms, 3], virial [..., 3, 3], zeros unless compute_virial)."""
    forces = forces_of_edges(grad_vectors, idx_i, idx_j, n_atoms)
    if compute_virial:
        return forces, virial_of_edges(vectors, grad_vectors)
    shape = list(grad_vectors.shape[:-2]) + [3, 3]
    return forces, torch.zeros(shape, dtype=grad_vectors.dtype, device=grad_vectors.device)
