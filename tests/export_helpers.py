"""Tiny models and structures for the export, calculator and md_examples tests."""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch
from ase.build import molecule
from torch import nn

from mlpot import keys as K
from mlpot.model.heads import n_structures_of
from mlpot.model.config import ModelConfig, build_potential
from mlpot.model.nn import scatter_add

SPECIES = [1, 6, 8]
CUTOFF = 4.0  # Å
WALL = 1.3    # Å: the pair repulsion (mlpot.model.nn.pair_repulsion) acts on ethanol's X–H bonds in every engine
WALL_STRENGTH = 10.0   # eV: that test wall as strong as the tiny network (the default, 100 eV, would make
                       # the bonds' curvature the wall's, and the finite-difference checks test only it)


class ChargeDipole(nn.Module):
    """Test dipole head: latent charges q_i = w·h_i, neutral per structure; μ = Σ q_i r_i [B, 3] e·Å."""

    def __init__(self, n_features: int):
        super().__init__()
        self.charge = nn.Linear(n_features, 1)

    def forward(self, data: Dict[str, torch.Tensor], features: torch.Tensor) -> Dict[str, torch.Tensor]:
        batch = data[K.BATCH]
        n_structures = n_structures_of(data)
        q = self.charge(features)[:, 0]
        total = scatter_add(q, batch, n_structures)
        count = scatter_add(torch.ones_like(q), batch, n_structures)
        q = q - (total / count)[batch]
        return {K.DIPOLE: scatter_add(q[:, None] * data[K.POSITIONS], batch, n_structures)}


def tiny_potential(dipole: bool = True, seed: int = 0, dtype: torch.dtype = torch.float64):
    """A small random SchNet (16 features, 2 interactions) for H, C, O with realistic atomrefs."""
    torch.manual_seed(seed)
    cfg = ModelConfig(n_atom_basis=16, n_filters=16, n_interactions=2, n_rbf=8, cutoff=CUTOFF)
    potential = build_potential(cfg, SPECIES)
    if dipole:
        potential.dipole_head = ChargeDipole(16)
    potential.set_energy_statistics({1: -13.6, 6: -1030.0, 8: -2040.0}, scale=0.5, shift=0.0)
    potential.repulsion.radius.fill_(WALL)
    potential.repulsion.strength.fill_(WALL_STRENGTH)
    return potential.to(dtype).eval()


def sharpened(potential):
    """Larger random weights than at initialisation: forces of order 1 eV/Å and more."""
    with torch.no_grad():
        for p in potential.parameters():
            p.mul_(1.3)
        potential.set_energy_statistics({1: -13.6, 6: -1030.0, 8: -2040.0, 14: -100.0}, scale=1.7, shift=0.3)
    return potential


def ethanol(rattle: float = 0.05, seed: int = 1):
    atoms = molecule("CH3CH2OH")
    atoms.rattle(rattle, seed=seed)
    return atoms


def periodic_ethanol(box: float = 5.5):
    """Ethanol in a small triclinic periodic box: images closer than the cutoff."""
    atoms = ethanol()
    atoms.cell = [[box, 0.0, 0.0], [0.4, box, 0.0], [0.3, -0.2, box]]
    atoms.pbc = True
    atoms.center()
    atoms.positions += np.array([0.1, -0.2, 0.3])
    return atoms


def export_without_atom_virial(potential, path, dtype: str = "float64") -> None:
    """Write `potential` as a file exported before the per-atom virial existed: its forward has
    no compute_atom_virial argument (SchNet keeps the per-layer methods, as such files had)."""
    import json

    from mlpot.deploy.export import TORCH_DTYPES
    from mlpot.deploy.metadata import METADATA_NAME, build_metadata, message_passing
    from mlpot.model.exported import ExportedForward, ExportedPerLayer

    base = ExportedPerLayer if message_passing(potential) == "per_layer" else ExportedForward

    class Older(base):
        def forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                    shift_vectors: torch.Tensor, cell: torch.Tensor, n_local: int,
                    compute_virial: bool = True) -> Dict[str, torch.Tensor]:
            return self.autograd_forward(positions, atomic_numbers, edge_index, shift_vectors, cell, n_local,
                                         compute_virial, False)

    import copy
    model = copy.deepcopy(potential).to(dtype=TORCH_DTYPES[dtype]).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    metadata = build_metadata(potential, dtype, "test: an export without compute_atom_virial", kernels="reference")
    torch.jit.save(torch.jit.script(Older(model)), str(path), _extra_files={METADATA_NAME: json.dumps(metadata)})
