"""The engines users run, behind the Potential's batch interface, for the physics suite.

An engine evaluates an exported model file's forward (or its per-layer methods) structure by
structure and returns what Potential.forward returns (ENERGY [B], ENERGIES [N], FORCES [N, 3],
VIRIAL and STRESS [B, 3, 3], DIPOLE [B, 3] where the file has one), so that the same checks run
over every engine:
  exported_autograd      ExportedPerLayer with reference kernels: forces by autograd (dipole head kept)
  written_out_fused      ExportedSchNet, fused kernels: the chain rule written out
  written_out_tabulated  ExportedSchNet, tabulated filters
  committee_stacked      two members as one StackedSchNet: the committee mean
  per_layer_driver       the per-layer methods driven as the LAMMPS plugin drives them (one rank,
                         a no-op feature exchange): interaction_forward / _backward,
                         readout_gradient and pair_terms, forces and virial from edge gradients
"""
from __future__ import annotations

import copy
from typing import Dict

import torch

from mlpot import keys as K
from mlpot.model.nn.edge_gradients import forces_and_virial

ENGINES = ["exported_autograd", "written_out_fused", "written_out_tabulated", "committee_stacked",
           "per_layer_driver"]


def _script(potential, dtype: torch.dtype, kernels: str):
    from mlpot.deploy.export import script_potential

    return script_potential(potential, "float64" if dtype == torch.float64 else "float32", kernels)


def _per_layer(module, positions, numbers, edge_index, shifts, compute_virial):
    """Energy, energies, forces, virial of one structure through the written-out per-layer methods."""
    n = positions.shape[0]
    vectors = positions[edge_index[1]] - positions[edge_index[0]] + shifts
    h = module.embed(numbers)
    saved = []
    n_layers = int(module.potential.n_interactions)
    for t in range(n_layers):
        out = module.interaction_forward(t, h, vectors, edge_index, n, 0)
        saved.append(out[1:])
        h = out[0]
    energies, seed = module.readout_gradient(h, numbers)
    pair_energies, grad = module.pair_terms(vectors, edge_index, numbers, n, 0)
    energies = energies + pair_energies
    for t in range(n_layers - 1, -1, -1):
        g_h, g_vectors = module.interaction_backward(t, seed, saved[t], vectors, edge_index, n, 0, n, t > 0)
        grad = grad + g_vectors
        seed = g_h
    forces, virial = forces_and_virial(vectors, grad, edge_index[0], edge_index[1], n, compute_virial)
    return {"energy": energies.sum().reshape(1), "energies": energies, "forces": forces, "virial": virial}


class Engine:
    """Callable like Potential.forward(batch, compute_forces, compute_stress) for an engine."""

    def __init__(self, name: str, potential64, dtype: torch.dtype, second=None):
        self.name = name
        potential = copy.deepcopy(potential64).to(dtype).eval()
        if name != "exported_autograd":
            potential.dipole_head = None       # the written-out engines have no dipole head
        self.energy_scale = potential.energy_scale
        if name == "exported_autograd":
            self.module = _script(potential, dtype, "reference")
        elif name == "written_out_tabulated":
            self.module = _script(potential, dtype, "tabulated")
        else:
            self.module = _script(potential, dtype, "fused")
        if name in ("written_out_fused", "written_out_tabulated", "per_layer_driver"):
            assert self.module.original_name == "ExportedSchNet", self.module.original_name
        self.stacked = None
        if name == "committee_stacked":
            from mlpot.kernels.stacked import StackedSchNet

            other = copy.deepcopy(second).to(dtype).eval()
            other.dipole_head = None
            self.members = [self.module, _script(other, dtype, "fused")]
            self.stacked = torch.jit.script(StackedSchNet(self.members))

    def structure(self, positions, numbers, edge_index, shifts, cell, compute_virial) -> Dict[str, torch.Tensor]:
        n = positions.shape[0]
        if self.stacked is not None:
            out = self.stacked(positions, numbers, edge_index, shifts, n, compute_virial)
            return {k: v.mean(0) for k, v in out.items()}
        if self.name == "per_layer_driver":
            return _per_layer(self.module, positions, numbers, edge_index, shifts, compute_virial)
        return dict(self.module(positions, numbers, edge_index, shifts, cell, n, compute_virial))

    def __call__(self, batch: Dict[str, torch.Tensor], compute_forces: bool = True,
                 compute_stress: bool = False) -> Dict[str, torch.Tensor]:
        numbers_all = batch[K.ATOMIC_NUMBERS]
        which = batch[K.BATCH] if K.BATCH in batch else torch.zeros_like(numbers_all)
        n_structures = int(batch[K.N_ATOMS].shape[0]) if K.N_ATOMS in batch else 1
        cells = batch[K.CELL].reshape(-1, 3, 3)
        edge_i, edge_j = batch[K.EDGE_INDEX]
        outs = {K.ENERGY: [], K.ENERGIES: [], K.FORCES: [], K.VIRIAL: [], K.STRESS: [], K.DIPOLE: []}
        for b in range(n_structures):
            atoms = torch.nonzero(which == b).squeeze(1)
            first = int(atoms[0])
            edges = torch.nonzero(which[edge_i] == b).squeeze(1)
            edge_index = torch.stack([edge_i[edges] - first, edge_j[edges] - first])
            cell = cells[b]
            shifts = batch[K.EDGE_SHIFTS][edges] @ cell
            out = self.structure(batch[K.POSITIONS][atoms].detach(), numbers_all[atoms], edge_index, shifts, cell,
                                 compute_stress)
            volume = torch.linalg.det(cell).abs()
            virial = out["virial"]
            outs[K.ENERGY].append(out["energy"].reshape(1))
            outs[K.ENERGIES].append(out["energies"])
            outs[K.FORCES].append(out["forces"])
            outs[K.VIRIAL].append(virial[None])
            outs[K.STRESS].append((-virial / volume if float(volume) > 0 else torch.zeros_like(virial))[None])
            if "dipole" in out:
                outs[K.DIPOLE].append(out["dipole"][None])
        return {k: torch.cat(v) for k, v in outs.items() if v}
