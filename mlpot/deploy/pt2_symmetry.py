"""The models of a `.pt2` file of a Behler–Parrinello potential (wACSF / ACSF descriptors and one
network per element): the package's whole-structure "model" and LAMMPS' "lammps" model, with the
same inputs as SchNet's (mlpot.deploy.pt2_model, mlpot.deploy.pt2_lammps) plus one more, last:

    triplets [2, T] int64: the angle triplets of the models' directed edge list (pairs of
    edges with the same centre, mlpot.model.representations.triplets.angle_triplets).

The package's "model" takes each pair once (its edge list is the pairs i → j, then j → i); LAMMPS'
takes its own directed edges. The loaders build the triplets (Pt2Model, the LAMMPS plugin): a
traced graph whose sizes depend on values (nonzero, repeat_interleave) compiled to wrong
angular forces in AOTInductor (torch 2.13), while every size given as an input compiles right.

The energy is the eager model's (SymmetryFunctions.descriptors_of_triplets, bounded, the element
networks with ElementalAtomwise.forward_masked, the per-element energies and the pair repulsion);
forces and virial come from its gradient along the edges, taken by autograd and unrolled into the
graph by make_fx before torch.export. No value checks inside: the loaders refuse unknown
elements before they call the package.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.fx.experimental.proxy_tensor import make_fx

from mlpot.deploy.pt2_lammps import LAMMPS_MODEL, PACKAGE_MODEL
from mlpot.deploy.pt2_model import directed_pairs
from mlpot.model.exported import ExportedSymmetryFunctions
from mlpot.model.heads import ElementalAtomwise, MaskedElementalAtomwise, structure_dipole
from mlpot.model.nn.edge_gradients import forces_and_virial
from mlpot.model.potential import Potential


def traceable(potential: Potential) -> Potential:
    """A copy of `potential` whose element networks (energy and dipole heads) run as
    MaskedElementalAtomwise: the same numbers without sizes that depend on values."""
    potential = copy.deepcopy(potential)
    for module in potential.modules():
        if type(module) is ElementalAtomwise:
            module.__class__ = MaskedElementalAtomwise     # same state, forward = forward_masked
    return potential


def energies_of_edges(potential: Potential, atomic_numbers: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
                      vectors: torch.Tensor, triplets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-atom energies [N] eV, the descriptors the networks see [N, F]) of a wACSF / ACSF
    potential (`traceable`) on directed edges i -> j (idx_i, idx_j [E], vectors r_j − r_i [E, 3]
    Å, each pair both ways) with their angle triplets [2, T]."""
    representation = potential.representation
    d = torch.linalg.norm(vectors, dim=1)
    channel = representation.element_channel[atomic_numbers]
    raw = representation.descriptors_of_triplets(channel, atomic_numbers, idx_i, idx_j, vectors, d,
                                                 triplets[0], triplets[1])
    features = representation.bounded(raw, representation.centre_row[atomic_numbers])
    energies = potential.atom_energies(features, atomic_numbers) + potential.repulsion(d, atomic_numbers, idx_i,
                                                                                      idx_j)
    return energies, features


def energy_and_gradients(potential: Potential, positions: torch.Tensor, atomic_numbers: torch.Tensor,
                         idx_i: torch.Tensor, idx_j: torch.Tensor, vectors: torch.Tensor, triplets: torch.Tensor,
                         n_local: int, with_dipole: bool):
    """(energy [1] eV of atoms < n_local, forces [N, 3] eV/Å, energies [N] eV, virial [3, 3] eV,
    ∂E/∂r_e [E, 3] eV/Å, and with_dipole (the potential's head) the dipole [3] e·Å)."""
    vectors = vectors.detach().requires_grad_(True)
    energies, features = energies_of_edges(potential, atomic_numbers, idx_i, idx_j, vectors, triplets)
    n_atoms = positions.shape[0]
    counted = (torch.arange(n_atoms, device=positions.device) < n_local).to(energies.dtype)
    energy = (energies * counted).sum()
    grad, = torch.autograd.grad([energy], [vectors])
    vectors = vectors.detach()
    forces, virial = forces_and_virial(vectors, grad, idx_i, idx_j, n_atoms, True)
    out = (energy.detach().reshape(1), forces, energies.detach(), virial, grad)
    if not with_dipole:
        return out
    return out + (structure_dipole(potential.dipole_head, positions, atomic_numbers, features.detach()),)


class SymmetryPackageGraph(nn.Module):
    """The package's "model": (positions [N, 3] Å, atomic_numbers [N], pair_index [2, P],
    pair_vectors [P, 3] Å, triplets [2, T] of the edges (pairs i → j, then j → i))."""

    def __init__(self, potential: Potential):
        super().__init__()
        self.potential = potential

    def forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, pair_index: torch.Tensor,
                pair_vectors: torch.Tensor, triplets: torch.Tensor):
        idx_i, idx_j = directed_pairs(pair_index)
        vectors = torch.cat([pair_vectors, -pair_vectors])
        out = energy_and_gradients(self.potential, positions, atomic_numbers, idx_i, idx_j, vectors, triplets,
                                   positions.shape[0], self.potential.dipole_head is not None)
        n_pairs = pair_index.shape[1]       # r_ji = −r_ij: the pair's gradient from both of its edges
        pair_gradient = out[4][:n_pairs] - out[4][n_pairs:]
        return out[:4] + (pair_gradient,) + out[5:]


class SymmetryLammpsGraph(nn.Module):
    """LAMMPS' "lammps" model: (positions [N, 3] Å, atomic_numbers [N], edge_index [2, E], local
    [n_local] uint8 (its length counts), triplets [2, T] of edge_index); mlpot.deploy.pt2_lammps."""

    def __init__(self, potential: Potential):
        super().__init__()
        self.potential = potential

    def forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                local: torch.Tensor, triplets: torch.Tensor):
        idx_i, idx_j = edge_index[0], edge_index[1]
        vectors = positions[idx_j] - positions[idx_i]
        return energy_and_gradients(self.potential, positions, atomic_numbers, idx_i, idx_j, vectors, triplets,
                                    local.shape[0], False)     # no dipole for LAMMPS


def traced_program(graph: nn.Module, example: tuple, dynamic_shapes: tuple) -> torch.export.ExportedProgram:
    """`graph` with its autograd unrolled into aten operators (make_fx, symbolic sizes), then
    exported with `dynamic_shapes` (the example's sizes of at least 2: torch.export specialises 0 and 1)."""
    unrolled = make_fx(graph.eval(), tracing_mode="symbolic", _allow_non_fake_inputs=True)(*example)
    return torch.export.export(unrolled, example, dynamic_shapes=dynamic_shapes, strict=False)


def export_symmetry(wrapped: ExportedSymmetryFunctions, package_example: tuple,
                    lammps_example: tuple | None) -> dict[str, torch.export.ExportedProgram]:
    """{"model": ..., "lammps": ...} of a wACSF / ACSF model traced with dynamic sizes; the
    examples are each model's inputs, triplets included (no "lammps" without its example)."""
    atoms = torch.export.Dim("n_atoms", min=1, max=10_000_000)
    pairs = torch.export.Dim("n_pairs", min=0, max=1_000_000_000)
    edges = torch.export.Dim("n_edges", min=0, max=1_000_000_000)
    local = torch.export.Dim("n_local", min=0, max=10_000_000)
    triplets = torch.export.Dim("n_triplets", min=0, max=10_000_000_000)
    potential = traceable(wrapped.potential)
    programs = {PACKAGE_MODEL: traced_program(SymmetryPackageGraph(potential), package_example,
                                              ({0: atoms}, {0: atoms}, {1: pairs}, {0: pairs}, {1: triplets}))}
    if lammps_example is not None:
        programs[LAMMPS_MODEL] = traced_program(SymmetryLammpsGraph(potential), lammps_example,
                                                ({0: atoms}, {0: atoms}, {1: edges}, {0: local}, {1: triplets}))
    return programs
