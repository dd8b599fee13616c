"""The forward of an exported model (plain tensors in, a dict out) around a Potential, and, for
SchNet, its layers one at a time (the LAMMPS plugin's exchange path); torch only. The files'
contract is docs/exported_model.md; the written-out engine (mlpot.kernels.written_out) extends
ExportedPerLayer."""
from typing import Dict, List

import torch
from torch import nn

from mlpot import keys as K
from mlpot.model.potential import Potential, structure_inputs
from mlpot.model.nn.edge_gradients import gradient_along_edges
from mlpot.model.nn.pair_repulsion import PairRepulsion, atom_shares, edge_weights


class ExportedForward(nn.Module):
    """The forward of an exported model, for one structure (ASE) or one MPI rank's atoms
    (LAMMPS: local atoms first, then ghosts, all shift vectors zero).

    forward(positions [N, 3] Å, atomic_numbers [N] int64, edge_index [2, E] int64,
            shift_vectors [E, 3] Å (S·cell), cell [3, 3] Å, n_local: int, compute_virial: bool,
            compute_atom_virial: bool = False)
    -> {"energy": [1] eV summed over atoms < n_local, "forces": [N, 3] eV/Å on all atoms,
        "energies": [N] eV, "virial": [3, 3] eV (zeros if not asked), "dipole": [3] e·Å (if any),
        "atom_virial": [N, 3, 3] eV (only when asked: −½ r_e ⊗ ∂E/∂r_e to both atoms of every
        edge, unsymmetrised; see atom_virial_of_edges)}
    Positions, shift vectors and cell must be in the model's dtype. Files exported before
    compute_atom_virial existed have a forward without it (engines check the forward's schema).
    """

    def __init__(self, potential: Potential):
        super().__init__()
        self.potential = potential

    def forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                shift_vectors: torch.Tensor, cell: torch.Tensor, n_local: int,
                compute_virial: bool = True, compute_atom_virial: bool = False) -> Dict[str, torch.Tensor]:
        return self.autograd_forward(positions, atomic_numbers, edge_index, shift_vectors, cell, n_local,
                                     compute_virial, compute_atom_virial)

    def autograd_forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                         shift_vectors: torch.Tensor, cell: torch.Tensor, n_local: int,
                         compute_virial: bool, compute_atom_virial: bool = False) -> Dict[str, torch.Tensor]:
        """forward by Potential.forward: forces and virial by autograd."""
        inputs = structure_inputs(positions, atomic_numbers, edge_index, shift_vectors, cell, n_local)
        out = self.potential(inputs, compute_forces=True, compute_stress=compute_virial,
                             compute_atom_virial=compute_atom_virial)
        result: Dict[str, torch.Tensor] = {
            "energy": out[K.ENERGY].detach(),
            "forces": out[K.FORCES].detach(),
            "energies": out[K.ENERGIES].detach(),
        }
        if compute_virial:
            result["virial"] = out[K.VIRIAL][0].detach()
        else:
            result["virial"] = torch.zeros((3, 3), dtype=positions.dtype, device=positions.device)
        if compute_atom_virial:
            result["atom_virial"] = out[K.ATOM_VIRIAL].detach()
        if K.DIPOLE in out:
            result["dipole"] = out[K.DIPOLE][0].detach()
        return result


class ExportedSymmetryFunctions(ExportedForward):
    """ExportedForward of a wACSF / ACSF model plus its single-model extrapolation grade:

    extrapolation_grade(positions [N, 3] Å, atomic_numbers [N], edge_index [2, E],
                        shift_vectors [E, 3] Å, cell [3, 3] Å)
        -> [N]: how far each atom's standardised descriptors lie outside the training atoms'
           range (SymmetryFunctions.extrapolation_grade; 0 inside)
    """

    @torch.jit.export
    def extrapolation_grade(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                            shift_vectors: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        data = structure_inputs(positions, atomic_numbers, edge_index, shift_vectors, cell, positions.shape[0])
        vectors = positions[edge_index[1]] - positions[edge_index[0]] + shift_vectors
        data[K.EDGE_VECTORS] = vectors
        data[K.EDGE_LENGTHS] = torch.linalg.norm(vectors, dim=1)
        return self.potential.representation.extrapolation_grade(data)


class ExportedPerLayer(ExportedForward):
    """ExportedForward of a SchNet model plus its layers one at a time, for engines that
    exchange the features of ghost atoms between layers (LAMMPS over MPI ranks: then each
    rank needs ghosts within one cutoff instead of n_interactions cutoffs).

    embed(atomic_numbers [N]) -> h_0 [N, F]
    interaction(t: int, h [N, F], edge_vectors [E, 3] Å, edge_index [2, E], n_targets: int,
                n_two_way: int = 0)
        -> h_{t+1} [n_targets, F] of the first n_targets atoms (every edge_index[0] < n_targets;
           edge_vectors[e] = r_j − r_i + shift, as in forward; messages go j -> i, and also
           i -> j along the first n_two_way edges: pairs of atoms < n_targets listed once)
    readout(h [n, F], atomic_numbers [n]) -> per-atom energies [n] eV
    The energy of atoms 0 .. n-1 is readout(h_T[:n], numbers[:n]).sum(); forces and the virial
    follow by autograd through the edge vectors of every layer.
    """

    @torch.jit.export
    def embed(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        return self.potential.representation.embed(atomic_numbers)

    @torch.jit.export
    def interaction(self, t: int, h: torch.Tensor, edge_vectors: torch.Tensor, edge_index: torch.Tensor,
                    n_targets: int, n_two_way: int = 0) -> torch.Tensor:
        d = torch.linalg.norm(edge_vectors, dim=1)
        return self.potential.representation.layer(t, h, d, edge_index[0], edge_index[1], n_targets, n_two_way)

    @torch.jit.export
    def readout(self, h: torch.Tensor, atomic_numbers: torch.Tensor) -> torch.Tensor:
        return self.potential.atom_energies(h, atomic_numbers)

    @torch.jit.export
    def pair_terms(self, edge_vectors: torch.Tensor, edge_index: torch.Tensor, atomic_numbers: torch.Tensor,
                   n_targets: int, n_two_way: int = 0) -> List[torch.Tensor]:
        """[repulsion energies [n_targets] eV of the first n_targets atoms, their sum's gradient
        ∂/∂edge_vectors [E, 3]] for the edges of interaction (same arguments; atomic_numbers [n]
        of the rows edge_index names)."""
        return pair_terms(self.potential.repulsion, edge_vectors, edge_index[0], edge_index[1], atomic_numbers,
                          n_targets, n_two_way)


def pair_terms(repulsion: PairRepulsion, vectors: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
               atomic_numbers: torch.Tensor, n_targets: int, n_two_way: int) -> List[torch.Tensor]:
    """[per-atom repulsion energies [n_targets] eV, ∂(their sum)/∂r_e [E, 3]] of edge vectors r_e
    [E, 3] Å: ½ φ to atom i of every edge, and to atom j of the first n_two_way; the energy of
    atoms < n_targets only."""
    d = torch.linalg.norm(vectors, dim=1)
    phi, slope = repulsion.edge_terms(d, atomic_numbers, idx_i, idx_j)
    n_atoms = atomic_numbers.shape[0]
    energies = atom_shares(phi, idx_i, idx_j, n_atoms, n_two_way).narrow(0, 0, n_targets)
    counted = (torch.arange(n_atoms, device=vectors.device) < n_targets).to(d.dtype)
    return [energies, gradient_along_edges(vectors, slope * edge_weights(idx_i, idx_j, counted, n_two_way), d)]
