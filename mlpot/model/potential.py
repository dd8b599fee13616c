"""Potential = representation + heads + per-element reference energies and a scale.

Energies are sums of per-atom energies E_i = scale · y_i + shift + E_ref[Z_i] + ½ Σ_j φ(r_ij) (the
pair repulsion below the training data's shortest contacts, mlpot.model.nn.pair_repulsion); forces are
−∂E/∂r by autograd (energy-conserving); the virial is −∂E/∂ε for a symmetric strain ε of
positions, cell and image shifts, and the stress is −virial / volume (ASE sign). The per-atom
virial (asked for) splits the virial over atoms by edges: with g_e = ∂E/∂r_e for the edge
vector r_e = r_j − r_i + S_e of edge e = (i, j), atoms i and j each get −½ r_e ⊗ g_e
(unsymmetrised [N, 3, 3], rows the vector's, columns the gradient's component); its sum over
atoms is −Σ_e r_e ⊗ g_e, whose symmetric part is the virial (docs/conventions.md).

`Potential.forward(batch)` serves training and the ASE calculator; `ExportedForward` (mlpot.model.exported) wraps
it with the plain-tensor signature that the exported TorchScript file and LAMMPS call.
Both are scriptable with torch.jit.script.
"""
from typing import Dict, List, Optional

import torch
from torch import nn

from mlpot import keys as K
from mlpot.model.heads import n_structures_of
from mlpot.model.nn import scatter_add
from mlpot.model.nn.edge_gradients import atom_virial_of_edges
from mlpot.model.nn.pair_repulsion import PairRepulsion

MAX_Z = 100


class Potential(nn.Module):
    def __init__(self, representation: nn.Module, energy_head: nn.Module, species: List[int],
                 dipole_head: Optional[nn.Module] = None, repulsion: float = 0.0):
        super().__init__()
        self.representation = representation
        self.energy_head = energy_head
        self.dipole_head = dipole_head
        self.cutoff: float = float(representation.cutoff)
        self.n_interactions: int = int(representation.n_interactions)
        self.species: List[int] = sorted(int(z) for z in species)
        self.register_buffer("atomref", torch.zeros(MAX_Z))         # eV per atom of element Z
        self.register_buffer("energy_scale", torch.ones(()))          # eV
        self.register_buffer("energy_shift", torch.zeros(()))         # eV per atom
        # pair repulsion below the training data's shortest contacts (strength `repulsion` eV;
        # mlpot.model.nn.pair_repulsion; zero until its radii are fitted)
        self.repulsion = PairRepulsion(self.species, repulsion)

    @torch.jit.unused
    def set_energy_statistics(self, atomref: Dict[int, float], scale: float = 1.0, shift: float = 0.0):
        """Per-element reference energies (eV), scale of the network output (eV) and a
        per-atom shift (eV)."""
        ref = torch.zeros(MAX_Z, dtype=self.atomref.dtype)
        for z, e in atomref.items():
            ref[int(z)] = float(e)
        self.atomref.copy_(ref)
        self.energy_scale.fill_(float(scale))
        self.energy_shift.fill_(float(shift))

    @property
    @torch.jit.unused
    def outputs(self) -> List[str]:
        out = [K.ENERGY, K.ENERGIES, K.FORCES, K.VIRIAL, K.STRESS]
        return out + ([K.DIPOLE] if self.dipole_head is not None else [])

    def atom_energies(self, features: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        """Per-atom energies [N] eV of final features [N, F] and atomic numbers [N]."""
        return self.energies_of_outputs(self.energy_head(features, numbers)[:, 0], numbers)

    def energies_of_outputs(self, y: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        """Per-atom energies [N] eV from the energy head's outputs y [N]: scale · y + shift + E_ref[Z]."""
        return self.energy_scale * y + self.energy_shift + self.atomref.to(y.dtype)[numbers]

    def forward(self, inputs: Dict[str, torch.Tensor], compute_forces: bool = True,
                compute_stress: bool = False, create_graph: bool = False,
                compute_atom_virial: bool = False) -> Dict[str, torch.Tensor]:
        """inputs: batch dict (docs/conventions.md). Returns ENERGY [B], ENERGIES [N], and
        FORCES [N, 3] / VIRIAL, STRESS [B, 3, 3] / ATOM_VIRIAL [N, 3, 3] (module docstring) when
        asked, DIPOLE [B, 3] with a dipole head. create_graph=True keeps the graph of the
        derivatives (training on forces, Hessians)."""
        numbers = inputs[K.ATOMIC_NUMBERS]
        n_atoms = numbers.shape[0]
        n_structures = n_structures_of(inputs)
        positions = inputs[K.POSITIONS]
        if compute_forces and not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        leaf_positions = positions
        if K.BATCH in inputs:
            batch = inputs[K.BATCH]
        else:
            batch = torch.zeros(n_atoms, dtype=torch.long, device=numbers.device)
        idx_i = inputs[K.EDGE_INDEX][0]
        idx_j = inputs[K.EDGE_INDEX][1]
        if K.SHIFT_VECTORS in inputs:
            shifts = inputs[K.SHIFT_VECTORS]
        else:
            cell = inputs[K.CELL].reshape(-1, 3, 3)
            shifts = torch.einsum("ek,ekl->el", inputs[K.EDGE_SHIFTS], cell[batch[idx_i]])

        strain = torch.zeros((n_structures, 3, 3), dtype=positions.dtype, device=positions.device)
        if compute_stress:
            strain.requires_grad_(True)
            sym = 0.5 * (strain + strain.transpose(1, 2))
            positions = positions + torch.einsum("ni,nij->nj", positions, sym[batch])
            shifts = shifts + torch.einsum("ei,eij->ej", shifts, sym[batch[idx_i]])

        vectors = positions[idx_j] - positions[idx_i] + shifts
        if compute_atom_virial and not vectors.requires_grad:
            vectors = vectors.detach().requires_grad_(True)
        data = inputs.copy()
        data[K.POSITIONS] = positions
        data[K.BATCH] = batch
        data[K.EDGE_VECTORS] = vectors
        data[K.EDGE_LENGTHS] = torch.linalg.norm(vectors, dim=1)

        features = self.representation(data)
        energies = self.atom_energies(features, numbers) + self.repulsion(data[K.EDGE_LENGTHS], numbers, idx_i, idx_j)
        summed = energies
        if K.N_LOCAL in inputs:
            local = torch.arange(n_atoms, device=numbers.device) < inputs[K.N_LOCAL]
            summed = energies * local.to(energies.dtype)
        energy = scatter_add(summed, batch, n_structures)
        out: Dict[str, torch.Tensor] = {K.ENERGY: energy, K.ENERGIES: energies}

        if compute_forces or compute_stress or compute_atom_virial:
            wrt: List[torch.Tensor] = []
            if compute_forces:
                wrt.append(leaf_positions)
            if compute_stress:
                wrt.append(strain)
            if compute_atom_virial:
                wrt.append(vectors)
            grads = torch.autograd.grad([energy.sum()], wrt, create_graph=create_graph, allow_unused=True)
            k = 0
            if compute_forces:
                g = grads[0]
                out[K.FORCES] = -g if g is not None else torch.zeros_like(leaf_positions)
                k = 1
            if compute_stress:
                g = grads[k]
                virial = -g if g is not None else torch.zeros_like(strain)
                cell = inputs[K.CELL].reshape(-1, 3, 3).to(virial.dtype)
                volume = torch.linalg.det(cell).abs()
                safe = torch.where(volume > 0, volume, torch.ones_like(volume))
                stress = torch.where((volume > 0)[:, None, None], -virial / safe[:, None, None],
                                     torch.zeros_like(virial))
                out[K.VIRIAL] = virial
                out[K.STRESS] = stress
                k += 1
            if compute_atom_virial:
                g = grads[k]
                grad_vectors = g if g is not None else torch.zeros_like(vectors)
                out[K.ATOM_VIRIAL] = atom_virial_of_edges(vectors, grad_vectors, idx_i, idx_j, n_atoms)

        if self.dipole_head is not None:
            out.update(self.dipole_head(data, features))
        return out


def structure_inputs(positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                     shift_vectors: torch.Tensor, cell: torch.Tensor, n_local: int) -> Dict[str, torch.Tensor]:
    """The batch dict of one structure (or one MPI rank's atoms) from plain tensors: positions
    [N, 3] Å, atomic_numbers [N], edge_index [2, E], shift_vectors [E, 3] Å, cell [3, 3] Å;
    energy is summed over atoms < n_local; total charge 0."""
    n = positions.shape[0]
    return {
        K.POSITIONS: positions,
        K.ATOMIC_NUMBERS: atomic_numbers,
        K.EDGE_INDEX: edge_index,
        K.SHIFT_VECTORS: shift_vectors,
        K.CELL: cell.reshape(1, 3, 3),
        K.BATCH: torch.zeros(n, dtype=torch.long, device=positions.device),
        K.N_ATOMS: torch.full((1,), n, dtype=torch.long, device=positions.device),
        K.N_LOCAL: torch.tensor(n_local, dtype=torch.long, device=positions.device),
        K.TOTAL_CHARGE: torch.zeros(1, dtype=positions.dtype, device=positions.device),
    }
