"""The LAMMPS model of a `.pt2` package: a second AOTInductor model, named "lammps", beside the
package's "model" (mlpot.deploy.pt2), for `pair_coeff * * model.pt2 ...` (the plugin's
whole-graph path, mlpot/lammps/csrc/mlpot_model.cpp). It traces the written-out engine as the
TorchScript file's forward runs it for LAMMPS: local atoms first, then ghosts (periodic images and
other ranks' atoms are explicit atoms, no shifts), a directed edge list that need not be symmetric
(edges into far ghosts are dropped), every edge one way, the energy summed over the local atoms:

    lammps(positions [N, 3] Å, atomic_numbers [N] int64, edge_index [2, E] int64 (i, j: j a
           neighbour of i, message j → i, r = x_j − x_i), local [n_local] uint8 (only its length
           counts: torch.export keeps a tensor's size dynamic, not an int argument's value))
      -> (energy [1] eV (Σ over atoms < n_local), forces [N, 3] eV/Å (ghosts included),
          energies [N] eV, virial [3, 3] eV, edge_gradient ∂E/∂r_e [E, 3] eV/Å (for compute
          stress/atom, which the plugin takes from it; not in packages written before it:
          metadata provides.atom_virial))

Sizes from N = 1, E = 0, n_local = 0 up (a rank may own no atom, or one without neighbours).
The export checks it against the eager model (ExportedSchNet's forward with n_local < N, as the
plugin calls a .pt) on LAMMPS-like inputs built from the export's check structures.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from mlpot.deploy.pt2_model import OUTPUT_NAMES
from mlpot.kernels.written_out import ExportedSchNet
from mlpot.model.nn.edge_gradients import atom_virial_of_edges
from mlpot.model.representations.triplets import angle_triplets

LAMMPS_MODEL = "lammps"        # the model's name in the package (AOTIModelPackageLoader's model_name)
PACKAGE_MODEL = "model"        # the package's whole-structure model (mlpot.deploy.pt2_model)


def lammps_member_models(n_members: int) -> list[str]:
    """The names of a committee package's LAMMPS models, one per member (each a single member's
    lammps model): lammps_0, lammps_1, ..."""
    return [f"{LAMMPS_MODEL}_{m}" for m in range(n_members)]


class LammpsGraph(nn.Module):
    """What is traced for LAMMPS (module docstring): ExportedSchNet's engine, n_two_way = 0."""

    def __init__(self, exported: ExportedSchNet):
        super().__init__()
        self.engine = exported.engine

    def forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                local: torch.Tensor):
        idx_i, idx_j = edge_index[0], edge_index[1]
        vectors = positions[idx_j] - positions[idx_i]     # as the .pt computes them, with zero shifts
        out = self.engine.forward_edges(positions, atomic_numbers, idx_i, idx_j, vectors, 0, local.shape[0], True,
                                        False, True)
        return out["energy"], out["forces"], out["energies"], out["virial"], out["edge_gradient"]


def lammps_inputs(positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                  n_local: int, triplets: bool = False) -> tuple:
    """The lammps model's inputs (positions, atomic_numbers, edge_index, local [n_local] uint8),
    and the edges' angle triplets [2, T] where the package takes them (mlpot.deploy.pt2_symmetry)."""
    inputs = (positions, atomic_numbers, edge_index, torch.zeros(n_local, dtype=torch.uint8))
    return inputs + (angle_triplets(edge_index[0], positions.shape[0]),) if triplets else inputs


def lammps_cases(cases: list[tuple]) -> list[tuple]:
    """LAMMPS-like (positions, atomic_numbers, edge_index, n_local) from the export's check
    structures (mlpot.deploy.pt2.check_structures; the first, a 9-atom cluster): 4 local atoms
    and 5 ghosts whose last 2 receive no messages (their edges dropped, as LAMMPS drops those
    of far ghosts: the list is not symmetric);
    the 9 atoms all local (a symmetric list, which the .pt runs as pairs); two neighbours, one
    local and one a ghost, and both ghosts (no local atom); 1 atom without edges."""
    positions, numbers, edges = cases[0][0], cases[0][1], cases[0][2]
    kept = edges[:, edges[0] < 7]
    pair = edges[:, 0]                                  # two neighbours, as atoms 0 and 1
    two = torch.tensor([[0, 1], [1, 0]])
    none = torch.zeros((2, 0), dtype=torch.long)
    return [(positions, numbers, kept, 4), (positions, numbers, edges, 9), (positions[pair], numbers[pair], two, 1),
            (positions[pair], numbers[pair], two, 0), (positions[:1], numbers[:1], none, 1)]


def compile_package(path, programs: dict, inductor_configs: dict, aten_scatters: bool = False) -> None:
    """One AOTInductor package at `path` holding every {name: ExportedProgram} of `programs`.
    aten_scatters: the sums into rows by index (index_put with accumulate, scatter_add) call
    ATen's kernels instead of inductor's loops of one atomic add per element (what inductor
    does under torch's deterministic mode). A wACSF / ACSF package sums ~50 angular terms of each
    of ~3e5 triplets (water 192) into atoms: its atomic adds took ~20% of a call."""
    from torch._inductor.package import package_aoti

    options = {**inductor_configs, "aot_inductor.package": True}
    with tempfile.TemporaryDirectory() as folder, aten_scatter_kernels(aten_scatters):
        files = {}
        for name, program in programs.items():
            compiled = torch._inductor.aot_compile(program.module(check_guards=False), program.example_inputs[0],
                                                   options=dict(options))
            # inductor's cache names a model's files after its generated code, which two models of
            # one architecture share (a committee's members): the later compile would overwrite the
            # earlier's weights before they are packaged, so each model's files are copied first
            files[name] = [own_copy(file, Path(folder) / name) for file in compiled]
        package_aoti(str(path), files)


def own_copy(file, folder: Path):
    """A copy of the compiled file `file` (a path) in `folder`; anything else as it is."""
    if not isinstance(file, str) or not os.path.isfile(file):
        return file
    folder.mkdir(exist_ok=True)
    return shutil.copy2(file, folder / os.path.basename(file))


@contextlib.contextmanager
def aten_scatter_kernels(enabled: bool):
    """torch's deterministic mode while inductor compiles, when `enabled` (compile_package); the
    caller's setting restored after."""
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


def lammps_deviation(path, wrapped, cases: list[tuple], triplets: bool = False,
                     model: str = LAMMPS_MODEL) -> tuple[str, float]:
    """(output, largest deviation relative to its scale) of the package's lammps model at `path`
    (or its `model`: a committee member's) from the eager model (ExportedSchNet, or
    ExportedSymmetryFunctions with triplets) over lammps_cases(cases)."""
    from torch._inductor.package import load_package

    from mlpot.deploy.pt2 import largest_deviation

    runner = load_package(str(path), model)
    return max((largest_deviation(run_lammps_model(runner, *case, triplets), eager_lammps(wrapped, *case))
                for case in lammps_cases(cases)), key=lambda found: found[1])


def export_lammps(wrapped: ExportedSchNet, example: tuple) -> torch.export.ExportedProgram:
    """The lammps model of `wrapped` traced with dynamic sizes; `example` one of lammps_cases
    (sizes of at least 2: torch.export specialises sizes 0 and 1 of its example)."""
    atoms = torch.export.Dim("n_atoms", min=1, max=10_000_000)
    edges = torch.export.Dim("n_edges", min=0, max=1_000_000_000)
    local = torch.export.Dim("n_local", min=0, max=10_000_000)
    return torch.export.export(LammpsGraph(wrapped).eval(), lammps_inputs(*example),
                               dynamic_shapes=({0: atoms}, {0: atoms}, {1: edges}, {0: local}), strict=False)


def eager_lammps(wrapped, positions: torch.Tensor, atomic_numbers: torch.Tensor,
                 edge_index: torch.Tensor, n_local: int) -> dict:
    """What the plugin gets from the TorchScript file of the same model on these inputs."""
    zeros = torch.zeros((edge_index.shape[1], 3), dtype=positions.dtype)
    return wrapped(positions, atomic_numbers, edge_index, zeros, torch.zeros((3, 3), dtype=positions.dtype),
                   n_local, True, True)


def run_lammps_model(runner, positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                     n_local: int, triplets: bool = False) -> dict:
    """The package's lammps model (a loaded runner) on these inputs, as a dict of its outputs."""
    out = dict(zip(OUTPUT_NAMES, runner(*lammps_inputs(positions, atomic_numbers, edge_index, n_local, triplets))))
    vectors = positions[edge_index[1]] - positions[edge_index[0]]     # as the plugin takes the per-atom virial
    out["atom_virial"] = atom_virial_of_edges(vectors, out.pop("edge_gradient"), edge_index[0], edge_index[1],
                                              positions.shape[0])
    return out
