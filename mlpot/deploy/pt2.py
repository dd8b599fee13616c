"""Export a Potential as a `.pt2` file: the written-out SchNet engine (or a wACSF / ACSF model with
its autograd unrolled) traced with torch.export (dynamic numbers of atoms and pairs) and compiled
ahead of time by AOTInductor into one package, mlpot's metadata inside (the same JSON as a
TorchScript file's, plus "file_format": "pt2" and "compiled_for"). A file that outlives
TorchScript, and a lower fixed cost per call.

What a `.pt2` holds today: SchNet with fused or tabulated kernels and an atom-wise energy head
(what `mlpot export` writes by default), or a committee of such members stacked into one engine
(mlpot.kernels.stacked), a whole structure per call (MLPotCalculator). A single model's package
also holds the models of LAMMPS' two paths, each checked the same way: the whole model on a ghost
shell, "lammps" (mlpot.deploy.pt2_lammps), and the layers one at a time with the ghosts' features
exchanged between them, "layer_{t}_forward" / "layer_{t}_backward" (mlpot.deploy.pt2_exchange). A
committee package holds each member's whole model on a ghost shell, "lammps_0", "lammps_1", ...
(LAMMPS' committee, `shell` path). A wACSF / ACSF model's package holds "model" and "lammps",
which also take the angle triplets of their edges (mlpot.deploy.pt2_symmetry). Every model gives
per-atom virials (from the gradient along its edges, a committee's for each member); the package's
"model" the dipole of a model with a dipole head (mlpot's DipoleMoment: SchNet's on the written-out
engine's final features). Hessians: MLPotCalculator differentiates the forces by differences. A
package is compiled for one machine kind (CPU, its instruction set): compile it again from the
checkpoint on another kind.

Before the file is written, the compiled package is compared with the eager model on two
structures (a molecule and a periodic cell smaller than the cutoff): energies, forces, virial,
per-atom virial and dipole must agree to float rounding (1e-10 of each output's scale in float64,
1e-5 in float32).
"""
from __future__ import annotations

import copy
import itertools
import json
import os
import platform
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mlpot import ops
from mlpot.data.neighbors import neighbor_list_arrays
from mlpot.deploy.export import TORCH_DTYPES, ModelFileError, wrapped_with_kernels
from mlpot.deploy.metadata import METADATA_NAME, build_metadata
from mlpot.deploy.pt2_lammps import LAMMPS_MODEL, PACKAGE_MODEL, compile_package, export_lammps, lammps_cases
from mlpot.deploy.pt2_lammps import lammps_deviation, lammps_inputs, lammps_member_models
from mlpot.deploy.pt2_symmetry import export_symmetry
from mlpot.deploy.pt2_exchange import export_layers, layer_deviation, layer_model_names, trace_example
from mlpot.deploy.pt2_model import OUTPUT_NAMES, PT2_SUFFIX, Pt2Model
from mlpot.kernels.written_out import ExportedSchNet, WrittenOutSchNet, written_out_forces_apply
from mlpot.model.heads import DipoleMoment, structure_dipole
from mlpot.model.exported import ExportedSymmetryFunctions

TOLERANCE = {"float64": 1e-10, "float32": 1e-5}   # of each output's largest magnitude
# what the export's check compares, where the package's result has it (Pt2Model.forward and
# run_lammps_model turn the packages' edge gradient into the per-atom virial)
CHECKED = ("energy", "forces", "energies", "virial", "atom_virial", "dipole")


class Pt2Graph(nn.Module):
    """What is traced: a written-out engine (one ExportedSchNet's, or a committee's members
    stacked) on one edge per unordered pair (each sending its message both ways), every atom
    local. Inputs and outputs: mlpot.deploy.pt2_model (a committee's with a member axis first)."""

    def __init__(self, engine: WrittenOutSchNet, dipole_head: nn.Module | None = None):
        super().__init__()
        self.engine = engine
        self.dipole_head = dipole_head      # a single model's, on the engine's final features

    def forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, pair_index: torch.Tensor,
                pair_vectors: torch.Tensor):
        out = self.engine.forward_edges(positions, atomic_numbers, pair_index[0], pair_index[1], pair_vectors,
                                        pair_index.shape[1], positions.shape[0], True, False, True)
        if self.dipole_head is not None:     # a single model's (a committee's members have none)
            out["dipole"] = structure_dipole(self.dipole_head, positions, atomic_numbers, out["features"])
        return tuple(out[key] for key in OUTPUT_NAMES if key in out)


def written_out_of(wrapped) -> ExportedSchNet | None:
    """The written-out engine's wrapper of an exported wrapper (mlpot.deploy.export.wrapped_with_kernels):
    itself, or for a SchNet that has it all but a dipole head, an ExportedSchNet of a copy without
    that head (the package runs the head on the engine's features); None for anything else."""
    if isinstance(wrapped, ExportedSchNet):
        return wrapped
    if getattr(wrapped.potential, "dipole_head", None) is None:
        return None
    energy_only = copy.deepcopy(wrapped.potential)
    energy_only.dipole_head = None
    return ExportedSchNet(energy_only) if written_out_forces_apply(energy_only) else None


def export_whole_structures(engine: WrittenOutSchNet, example: tuple,
                            dipole_head: nn.Module | None = None) -> torch.export.ExportedProgram:
    """The package's model of a written-out engine (and a single model's dipole head) traced with
    dynamic numbers of atoms and pairs."""
    atoms = torch.export.Dim("n_atoms", min=2, max=10_000_000)
    pairs = torch.export.Dim("n_pairs", min=2, max=1_000_000_000)
    return torch.export.export(Pt2Graph(engine, dipole_head).eval(), example,
                               dynamic_shapes=({0: atoms}, {0: atoms}, {1: pairs}, {0: pairs}), strict=False)


def check_structures(species: list[int], cutoff: float, dtype: torch.dtype) -> list[tuple]:
    """The export's example and check inputs: (positions, atomic_numbers, edge_index,
    shift_vectors, cell) of a 9-atom cluster of the model's elements, and of 5 of its atoms in a
    periodic cubic cell of edge 0.6 × cutoff (images within the cutoff)."""
    rng = np.random.default_rng(0)
    positions = []
    while len(positions) < 9:       # at least 1 Å apart, within 3.5 Å of the centre
        p = rng.uniform(-3.5, 3.5, 3)
        if np.linalg.norm(p) < 3.5 and all(np.linalg.norm(p - q) > 1.0 for q in positions):
            positions.append(p)
    numbers = np.array([species[k % len(species)] for k in range(9)])
    cases = []
    for n, cell, pbc in ((9, np.zeros((3, 3)), False), (5, np.eye(3) * 0.6 * cutoff, True)):
        pos = np.array(positions[:n]) % (0.6 * cutoff) if pbc else np.array(positions[:n])
        i, j, shifts = neighbor_list_arrays(pos, cell, [pbc] * 3, cutoff)
        cases.append((torch.tensor(pos, dtype=dtype), torch.tensor(numbers[:n], dtype=torch.long),
                      torch.tensor(np.stack([i, j]), dtype=torch.long),
                      torch.tensor(shifts @ cell, dtype=dtype), torch.tensor(cell, dtype=dtype)))
    return cases


def largest_deviation(compiled: dict, eager: dict) -> tuple[str, float]:
    """(the output, its largest deviation relative to its largest magnitude) of two results (the
    outputs of CHECKED that `compiled` has; `eager` must have them too)."""
    worst = ("energy", 0.0)
    for key in (k for k in CHECKED if k in compiled):
        a, b = compiled[key].double(), eager[key].double()
        scale = max(float(b.abs().max()), 1e-12) if b.numel() else 1.0
        deviation = float((a - b).abs().max()) / scale if b.numel() else 0.0
        if deviation > worst[1]:
            worst = (key, deviation)
    return worst


def export_pt2(potential, path, dtype: str = "float32", training_data: str = "unknown",
               metadata_extra: dict[str, Any] | None = None, kernels: str = "auto",
               table_spacing: float = 0.0, lammps_layers: bool = True, lammps: bool = True) -> dict[str, Any]:
    """Write `potential` to `path` (ending in .pt2) as an AOTInductor package; returns the
    metadata written. Arguments as mlpot.deploy.export.export_model; `potential` may be a list
    of M > 1 members of one architecture (a committee run's), written as one package whose
    outputs carry a member axis first (metadata "n_members": M). ModelFileError (one line) for a
    model a `.pt2` cannot hold yet, or a package that disagrees with the eager model. lammps_layers:
    a single model's package also holds the layer models of LAMMPS' exchange path
    (mlpot.deploy.pt2_exchange; 2 per interaction, ~7 s of compiling each). lammps=False: the
    package holds its whole-structure model only (ASE, `mlpot eval`), none of LAMMPS' models (a
    single model's lammps and layer models, a committee's lammps_0 ..; ~9 s of compiling each)."""
    with warnings.catch_warnings():
        # the filter tables' derivatives (torch.func.jvp) and torch.export load torch's own jvp
        # decompositions and inductor imports torch.utils.mkldnn, which torch itself scripts: mlpot
        # scripts nothing here
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        # torch.export's own copies of its tree specs (torch 2.13 warns inside copy.deepcopy)
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                category=FutureWarning)
        return _export_pt2(potential, Path(path), dtype, training_data, metadata_extra, kernels, table_spacing,
                           lammps_layers, lammps)


def _export_pt2(potential, path: Path, dtype: str, training_data: str, metadata_extra: dict[str, Any] | None,
                kernels: str, table_spacing: float, lammps_layers: bool, lammps: bool) -> dict[str, Any]:
    if path.suffix != PT2_SUFFIX:
        raise ModelFileError(f"{path}: a .pt2 package's name must end in .pt2")
    ops.load()    # the pair rule of the package's inputs (edges_for_messages) is one of mlpot's operators
    members = list(potential) if isinstance(potential, (list, tuple)) else [potential]
    single = len(members) == 1
    wrapped_members, engines = [], []      # each member's exported wrapper, and its written-out engine's
    for member in members:
        wrapped, chosen, tables = wrapped_with_kernels(member, dtype, kernels, table_spacing)
        written_out = written_out_of(wrapped)
        if written_out is None and not isinstance(wrapped, ExportedSymmetryFunctions):
            raise ModelFileError(f"{path}: a .pt2 file holds SchNet with fused or tabulated kernels, or wACSF / ACSF "
                                 f"(this model: {type(member.representation).__name__}, {chosen} kernels); "
                                 "export a TorchScript file instead: -o model.pt")
        wrapped_members.append(wrapped)
        engines.append(written_out)
    symmetry = engines[0] is None   # wACSF / ACSF: mlpot.deploy.pt2_symmetry
    dipole_head = wrapped_members[0].potential.dipole_head
    if dipole_head is not None and not isinstance(dipole_head, DipoleMoment):
        raise ModelFileError(f"{path}: a .pt2 file holds mlpot's dipole heads (DipoleMoment), not "
                             f"{type(dipole_head).__name__}; export a TorchScript file instead: -o model.pt")
    energy_only = all(e is not None and w.potential.dipole_head is None for e, w in zip(engines, wrapped_members))
    if not single and not energy_only:
        raise ModelFileError(f"{path}: a committee .pt2 stacks SchNet members with an energy head only; give this "
                             "committee as one .pt2 file per member (mlpot export -o model.pt2 for each checkpoint)")
    try:
        engine = None if symmetry else engines[0].engine if single else WrittenOutSchNet(engines)
    except ValueError as err:   # members of different architectures
        raise ModelFileError(f"{path}: {err}; export them as separate TorchScript files (-o model.pt)") from None
    potential = members[0]
    extra = dict(metadata_extra or {})
    extra.update(tables)   # the last member's tables (each member's error is within the same tolerance)
    if not single:
        extra["n_members"] = len(members)
    layers = single and lammps and lammps_layers and not symmetry
    n_features = int(potential.representation.n_features)
    extra["provides"] = {"per_layer": layers, "written_out": not symmetry, "n_features": n_features if layers else 0,
                         "atom_virial": True, "extrapolation_grade": False}
    if symmetry:
        extra["angle_triplets"] = True
    extra["file_format"] = "pt2"
    extra["compiled_for"] = {"device": "cpu", "machine": platform.machine()}
    # LAMMPS' pair_style mlpot runs the others: each member's whole model (a single model's "lammps")
    lammps_models = ([LAMMPS_MODEL] if single else lammps_member_models(len(members))) if lammps else []
    extra["pt2_models"] = ([PACKAGE_MODEL] + lammps_models +
                           (layer_model_names(engine.n_interactions) if layers else []))
    metadata = build_metadata(potential, dtype, training_data, extra, kernels=chosen)

    cases = check_structures(sorted(int(z) for z in potential.species), float(potential.cutoff), TORCH_DTYPES[dtype])
    example = Pt2Model.pair_inputs(*cases[0][:4])
    if symmetry:
        programs = export_symmetry(wrapped_members[0], example + (Pt2Model.pair_triplets(example[2], len(example[0])),),
                                   lammps_inputs(*lammps_cases(cases)[0], triplets=True) if lammps else None)
    else:
        programs = {PACKAGE_MODEL: export_whole_structures(engine, example, dipole_head)}
        programs.update({name: export_lammps(e, lammps_cases(cases)[0]) for name, e in zip(lammps_models, engines)})
        if layers:
            programs.update(export_layers(engines[0], trace_example(*cases[0][:2])))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{PT2_SUFFIX}")   # the user's file is replaced only when checked
    try:
        compile_package(partial, programs, {"aot_inductor.metadata": {METADATA_NAME: json.dumps(metadata)}},
                        aten_scatters=symmetry)
        compiled = Pt2Model(partial, metadata)
        deviations = []     # (which of the package's models, (output, its largest relative deviation))
        for case, (m, wrapped) in itertools.product(cases, enumerate(wrapped_members)):
            eager = wrapped(*case, case[0].shape[0], True, True)          # each member on its own
            out = compiled.forward(*case, case[0].shape[0], True, True)
            deviations.append(("", largest_deviation(out if single else {k: v[m] for k, v in out.items()}, eager)))
        for name, wrapped in zip(lammps_models, wrapped_members):
            deviations.append((f"LAMMPS model {name}'s ", lammps_deviation(partial, wrapped, cases, symmetry, name)))
        if layers:
            deviations.append(("LAMMPS layer models' ", layer_deviation(partial, engines[0], cases[0])))
        for model, (key, deviation) in deviations:
            if deviation > TOLERANCE[dtype]:
                raise ModelFileError(f"{path}: the compiled package's {model}{key} differs from the model's by "
                                     f"{deviation:.1e} of its scale (> {TOLERANCE[dtype]:g}); not written. Export a "
                                     "TorchScript file (-o model.pt) and report this")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return metadata
