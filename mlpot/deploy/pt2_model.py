"""A `.pt2` model file loaded: the AOTInductor package written by mlpot.deploy.pt2, behind the
forward of a TorchScript model file, so that MLPotCalculator runs either.

The package's own model takes a whole structure with one edge per unordered pair:
    model(positions [N, 3] Å, atomic_numbers [N] int64, pair_index [2, P] int64 (i, j),
          pair_vectors [P, 3] Å (r_j − r_i + S·cell)) -> (energy [1] eV, forces [N, 3] eV/Å,
                                                         energies [N] eV, virial [3, 3] eV,
                                                         edge_gradient [P, 3] eV/Å,
                                                         dipole [3] e·Å)
(a committee package's outputs carry a member axis M first, and it has no dipole).
edge_gradient, ∂E/∂r_p of each pair vector, is in every package (metadata provides.atom_virial;
not in those written before it): Pt2Model turns it into ExportedForward's per-atom virial
(−½ r_p ⊗ ∂E/∂r_p to both atoms of every pair; a committee's [M, N, 3, 3]) when asked
(computed in every call inside the package, the per-atom virial cost 15 % of a step on Si 1728).
The dipole is in the packages of a model with a dipole head (its latent charges on the final
features, a neutral structure).
Pt2Model.forward takes the full, symmetric edge list of ExportedForward.forward and keeps one edge
of each pair (mlpot.kernels.written_out.edges_for_messages, the written-out engine's pair rule);
Pt2Model.forward_pairs takes the pairs as they are (MLPotCalculator: SkinNeighborList.pairs).
A wACSF / ACSF package (metadata "angle_triplets") takes the angle triplets of its edges as a
fifth input, which forward_pairs builds (mlpot.deploy.pt2_symmetry).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Dict

import torch

from mlpot import ops
from mlpot.kernels.written_out import edges_for_messages
from mlpot.model.nn.edge_gradients import atom_virial_of_edges
from mlpot.model.representations.triplets import angle_triplets

PT2_SUFFIX = ".pt2"
AOTI_FOLDER = "/data/aotinductor/"          # what every AOTInductor package holds (below its top folder)
AOTI_METADATA = "wrapper_metadata.json"      # where AOTInductor keeps a package's metadata dict
# a package's outputs, in order (edge_gradient: not in packages written before it; dipole: a model
# with a dipole head)
OUTPUT_NAMES = ("energy", "forces", "energies", "virial", "edge_gradient", "dipole")


def directed_pairs(pair_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(idx_i, idx_j [2P]): the directed edges of pairs [2, P], i → j, then j → i; the order a
    wACSF / ACSF package's edges and their triplets share."""
    return torch.cat([pair_index[0], pair_index[1]]), torch.cat([pair_index[1], pair_index[0]])


def is_pt2_archive(names: list[str]) -> bool:
    """Whether the entries of a zip file are an AOTInductor package's."""
    return any(AOTI_FOLDER in n for n in names)


def pt2_metadata_text(archive: zipfile.ZipFile, metadata_name: str) -> tuple[str, dict[str, str]]:
    """(mlpot's metadata JSON, AOTInductor's own keys such as AOTI_DEVICE_KEY and AOTI_CPU_ISA) of
    an open package; KeyError when the package holds no mlpot metadata."""
    for name in archive.namelist():
        if AOTI_FOLDER in name and name.endswith(AOTI_METADATA):
            entries = json.loads(archive.read(name).decode("utf-8"))
            if metadata_name in entries:
                aoti = {k: v for k, v in entries.items() if k.startswith("AOTI_")}
                return entries[metadata_name], aoti
    raise KeyError(metadata_name)


class Pt2Model:
    """A loaded `.pt2` file with ExportedForward's forward (CPU, whole structures)."""

    def __init__(self, path, metadata: Dict[str, Any]):
        ops.load()                    # the package calls torch.ops.mlpot.*: the library comes first
        self.path = str(path)
        self.metadata = metadata
        self.runner = torch._inductor.aoti_load_package(self.path)
        # the package's loader called directly: AOTICompiledModel.__call__ parses the call's tree
        # spec on every call (~0.05 ms, a fifth of the model's time on ethanol)
        self._run = self.runner.loader.boxed_run
        # a wACSF / ACSF package takes its edges' angle triplets too (mlpot.deploy.pt2_symmetry)
        self.angle_triplets = bool(metadata.get("angle_triplets", False))
        self.atom_virial = bool(metadata.get("provides", {}).get("atom_virial", False))

    def forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                shift_vectors: torch.Tensor, cell: torch.Tensor, n_local: int,
                compute_virial: bool = True, compute_atom_virial: bool = False) -> Dict[str, torch.Tensor]:
        n_atoms = positions.shape[0]
        if n_local != n_atoms:
            raise ValueError(f"{self.path}: the package's model evaluates whole structures (n_local = N); "
                             "LAMMPS runs its 'lammps' model (pair_coeff * * model.pt2 ...)")
        if compute_atom_virial and not self.atom_virial:
            raise ValueError(f"{self.path} holds no per-atom virial (written before .pt2 files held them): export "
                             "it again, or use a TorchScript file (.pt)")
        return self.forward_pairs(*self.pair_inputs(positions, atomic_numbers, edge_index, shift_vectors),
                                  atom_virial=compute_atom_virial)

    __call__ = forward

    def forward_pairs(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, pair_index: torch.Tensor,
                      pair_vectors: torch.Tensor, atom_virial: bool = False) -> Dict[str, torch.Tensor]:
        """The package's model on one edge per unordered pair (pair_index [2, P], pair_vectors
        [P, 3] Å): energy [1] eV, forces [N, 3] eV/Å, energies [N] eV, virial [3, 3] eV, dipole
        [3] e·Å where the model has one, and atom_virial [N, 3, 3] eV when asked (the package must
        provide it: self.atom_virial)."""
        inputs = [positions, atomic_numbers, pair_index, pair_vectors]
        if self.angle_triplets:
            inputs.append(self.pair_triplets(pair_index, positions.shape[0]))
        out = dict(zip(OUTPUT_NAMES, self._run(inputs)))
        gradient = out.pop("edge_gradient", None)
        if atom_virial:     # a committee's gradient [M, P, 3] gives each member's
            out["atom_virial"] = atom_virial_of_edges(pair_vectors, gradient, pair_index[0], pair_index[1],
                                                      positions.shape[0])
        return out

    @staticmethod
    def pair_triplets(pair_index: torch.Tensor, n_atoms: int) -> torch.Tensor:
        """The angle triplets [2, T] a wACSF / ACSF package takes with pairs [2, P]: those of its
        directed edges (directed_pairs; mlpot.deploy.pt2_symmetry)."""
        return angle_triplets(directed_pairs(pair_index)[0], n_atoms)

    @staticmethod
    def pair_inputs(positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                    shift_vectors: torch.Tensor) -> tuple:
        """The package's inputs (positions, atomic_numbers, pair_index [2, P], pair_vectors [P, 3] Å)
        from a full, symmetric edge list [2, E] (P = E / 2; the written-out engine's pair rule)."""
        idx_i, idx_j, vectors, n_two_way = edges_for_messages(positions, edge_index, shift_vectors,
                                                              positions.shape[0], True)
        if n_two_way != idx_i.shape[0]:
            raise ValueError("a .pt2 file needs a symmetric edge list (every edge i→j with its j→i), "
                             "as mlpot's neighbour lists give")
        return positions, atomic_numbers, torch.stack([idx_i, idx_j]), vectors


def load_pt2(path, metadata: Dict[str, Any], device: str | torch.device = "cpu") -> Pt2Model:
    """The model of a `.pt2` file whose metadata has been read (mlpot.deploy.export.load_model)."""
    compiled = metadata.get("compiled_for", {})
    if torch.device(device).type != compiled.get("device", "cpu"):
        raise ValueError(f"{path} was compiled for {compiled.get('device', 'cpu')}, not {torch.device(device).type}; "
                         "compile it again from its checkpoint: mlpot export CKPT -o model.pt2 on that device")
    return Pt2Model(Path(path), metadata)
