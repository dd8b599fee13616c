"""MLPotCalculator: an exported mlpot model (one TorchScript file) as an ASE calculator.

    from mlpot import MLPotCalculator
    atoms.calc = MLPotCalculator("model.pt")          # device="cpu", skin=0.5 Å
    atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(), calc.get_hessian(atoms)

    atoms.calc = MLPotCalculator(["m0.pt", "m1.pt", "m2.pt"])   # a committee: the mean, and
    atoms.calc.get_property("uncertainty", atoms)                # how much its members disagree

Units: eV, Å, eV/Å, eV/Å³ (stress, ASE sign and Voigt order xx yy zz yz xz xy), e·Å (dipole).
Per-atom stresses (`atoms.get_stresses()`, periodic cells): [N, 6] eV/Å³ in ASE's convention
(as its LJ calculator: each atom's share of the virial over the whole cell's volume, summing
over atoms to the stress), from the edge split of the virial (mlpot.model.nn.edge_gradients.atom_virial_of_edges).
"""
from __future__ import annotations

import ctypes
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols

from mlpot.deploy.atoms_snapshot import AtomsSnapshot
from mlpot.deploy.committee import COMMITTEE_PROPERTIES, HALT_MEASURES, ExtrapolationError, check_members, committee_statistics
from mlpot.deploy.export import TORCH_DTYPES, has_atom_virial, load_model
from mlpot.deploy.pt2_model import Pt2Model
from mlpot.model.potential import structure_inputs
from mlpot.deploy.skin_neighbors import SkinNeighborList
from mlpot.deploy.step_arrays import same_array, to_float64, to_tensor
from mlpot.kernels.stacked import stacked_committee


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters (malloc.h)
_memory_kept = False


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory in the process (no mmap for large blocks, no
    trimming), so that the model's large temporaries are reused by the next call instead of being
    returned to the OS and faulted in (zeroed) again: that page-fault traffic cost more system
    time than the model's arithmetic for 13824-atom Si. Process-wide and permanent; the process
    keeps its peak memory. Returns False where it does not apply (not glibc)."""
    global _memory_kept
    if _memory_kept:
        return True
    try:
        libc = ctypes.CDLL("libc.so.6")
        _memory_kept = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
    except (OSError, AttributeError):
        return False
    return _memory_kept


def voigt_stress(virial: np.ndarray, volume: float) -> np.ndarray:
    """Stress −W/V (eV/Å³) as ASE's Voigt 6-vector (xx, yy, zz, yz, xz, xy); virial W [3, 3] eV."""
    s = -np.asarray(virial, dtype=float) / volume
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def voigt_stresses(atom_virial: np.ndarray, volume: float) -> np.ndarray:
    """Per-atom stresses [N, 6] eV/Å³ (ASE's `stresses`: −sym(W_a)/V, Voigt xx yy zz yz xz xy) of
    per-atom virials W_a [N, 3, 3] eV (unsymmetrised) and the cell's volume V."""
    w = np.asarray(atom_virial, dtype=float)
    s = -0.5 * (w + w.transpose(0, 2, 1)) / volume
    return np.stack([s[:, 0, 0], s[:, 1, 1], s[:, 2, 2], s[:, 1, 2], s[:, 0, 2], s[:, 0, 1]], axis=1)


# get_hessian's step (Å) for .pt2 files, by dtype: float64 rounding (1e-16 of the forces) over the
# step stays ~1e-12 eV/Å², the stencil's h⁴ error ~1e-9; float32's rounding needs a longer step
HESSIAN_STEP = {"float64": 2e-3, "float32": 2e-2}


class MLPotCalculator(Calculator):
    """ASE calculator for a model file written by `mlpot export`.

    model: path of the .pt or .pt2 file, or a list of them: a committee (e.g. the members of a
    committee run, `mlpot export` of a run with training.ensemble); a committee `.pt2` file
    (`mlpot export RUN -o committee.pt2`) holds its members stacked and is a committee on its
    own. A committee's energy, forces,
    stress and dipole are the mean of its members; `results` also holds energy_std (eV),
    forces_std ([N] eV/Å, per-atom norm of the force standard deviation) and uncertainty (its
    largest value, eV/Å), see mlpot.deploy.committee. Members must agree in cutoff, elements and
    outputs; they share one neighbour list. stacked=True (default, CPU): members of one SchNet
    architecture with written-out forces (fused or tabulated kernels, no dipole head; the members
    of one committee run) are evaluated as one model with their weights stacked
    (mlpot.kernels.stacked; `calc.stacked` is None where that does not apply). Otherwise
    parallel_members=K evaluates up to K members at once in threads (TorchScript runs without
    the GIL): worth it where cores are idle, e.g. K = cores with torch.set_num_threads(1); the
    default 1 evaluates them one after the other. device: torch device ("cpu", "cuda"). skin: Å added to the
    cutoff of the neighbour list, which is rebuilt only when an atom moved more than skin/2 or
    the cell, pbc or atomic numbers changed (`n_neighbor_builds` counts builds, `n_evaluations`
    model calls). The dtype is the one the model was exported in. torch.set_num_threads is left
    to the caller.

    The model runs with TorchScript's graph optimisations off (torch.jit.optimized_execution,
    scoped to each call): the profiling executor re-specialises the graph whenever the number of
    edges changes, i.e. on almost every MD step, which costs more than it gains (docs/speed.md).
    keep_memory=True calls `keep_freed_memory()`: the C library keeps memory the model frees for
    the next call (process-wide; the process keeps its peak memory); False leaves malloc alone.

    halt_deviation (committees, eV/Å): a calculation whose uncertainty exceeds it raises
    mlpot.deploy.committee.ExtrapolationError (on_deviation="raise") after appending the frame to
    deviation_file (extxyz, with forces_std) if given; on_deviation="write" appends and goes on.
    halt_extrapolation (a single wACSF / ACSF model, training stds): the same on the largest
    per-atom extrapolation grade (below); on_deviation and deviation_file act alike.
    Two atoms closer than mlpot.data.neighbors.MIN_DISTANCE raise OverlapError (a ValueError).
    A single wACSF / ACSF model also gives `calc.get_property("extrapolation_grade")` ([N]: how
    far each atom's descriptors lie outside the training atoms' range, in units of their training
    std; 0 inside: mlpot.model.representations.wacsf.SymmetryFunctions.extrapolation_grade).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "stresses", "dipole"]

    def __init__(self, model, device: str | torch.device = "cpu", skin: float = 0.5,
                 keep_memory: bool = True, parallel_members: int = 1, stacked: bool = True,
                 halt_deviation: float | None = None, on_deviation: str = "raise",
                 deviation_file: str | None = None, halt_extrapolation: float | None = None, **kwargs):
        super().__init__(**kwargs)
        if keep_memory:
            keep_freed_memory()
        paths = [str(m) for m in model] if isinstance(model, (list, tuple)) else [str(model)]
        if not paths:
            raise ValueError("MLPotCalculator needs a model file (or a list of them for a committee)")
        self.model_paths = paths
        self.model_path = paths[0] if len(paths) == 1 else ", ".join(paths)
        self.device = torch.device(device)
        loaded = [load_model(path, self.device) for path in paths]
        self.modules = [module for module, _ in loaded]
        self.metadatas = [metadata for _, metadata in loaded]
        check_members(self.metadatas, paths)
        # a committee .pt2 holds its M members stacked (mlpot.deploy.pt2): one file, M members
        self.n_members = sum(int(md.get("n_members", 1)) for md in self.metadatas)
        if len(paths) > 1 and self.n_members > len(paths):
            raise ValueError(f"{self.model_path}: a committee .pt2 file holds all its members; pass it alone "
                             "(MLPotCalculator('committee.pt2'))")
        self.module, self.metadata = self.modules[0], self.metadatas[0]
        self.dtype = TORCH_DTYPES[self.metadata["dtype"]]
        if any(m["dtype"] != self.metadata["dtype"] for m in self.metadatas):
            raise ValueError(f"committee members differ in dtype ({', '.join(m['dtype'] for m in self.metadatas)}): "
                             "export them all with the same --dtype")
        self.cutoff = float(self.metadata["cutoff"])
        self.species = np.array(self.metadata["species"], dtype=np.int64)
        outputs = self.metadata["outputs"]
        # per-atom stresses need a forward with compute_atom_virial (files exported before it lack it)
        self.has_atom_virial = all(has_atom_virial(m, md) for m, md in zip(self.modules, self.metadatas))
        self.implemented_properties = [p for p in MLPotCalculator.implemented_properties
                                       if (p != "dipole" or "dipole" in outputs)
                                       and (p != "stresses" or self.has_atom_virial)]
        if self.is_committee:
            self.implemented_properties += list(COMMITTEE_PROPERTIES)
        # a single wACSF / ACSF model's per-atom extrapolation grade (ExportedSymmetryFunctions)
        self.has_grade = not self.is_committee and bool(self.metadata.get("provides", {}).get(
            "extrapolation_grade", hasattr(self.module, "extrapolation_grade")))
        if self.has_grade:
            self.implemented_properties.append("extrapolation_grade")
        self.neighbors = SkinNeighborList(self.cutoff, skin, self.dtype, self.device)
        # .pt2 files take each pair once (SkinNeighborList.pairs), not the symmetric edge list
        self.takes_pairs = all(isinstance(m, Pt2Model) for m in self.modules)
        # a committee of SchNet members of one architecture runs as one stacked model (batched
        # matrix products over the members: mlpot.kernels.stacked); per-atom stresses and the
        # Hessian still evaluate the members one by one
        self.stacked = None
        if stacked and self.is_committee and self.device.type == "cpu":
            self.stacked = stacked_committee(self.modules)
        self._pool = None
        if parallel_members > 1 and self.is_committee and self.stacked is None:
            self._pool = ThreadPoolExecutor(max_workers=min(parallel_members, len(self.modules)))
        if deviation_file is not None and halt_deviation is None and halt_extrapolation is None:
            raise ValueError("deviation_file needs halt_deviation (eV/Å) or halt_extrapolation")
        self.halt = checked_halt("halt_deviation", self.is_committee, halt_deviation, on_deviation, deviation_file)
        self.halt_grade = checked_halt("halt_extrapolation", self.has_grade, halt_extrapolation, on_deviation,
                                       deviation_file)
        self.n_evaluations = 0
        self._numbers_key: np.ndarray | None = None
        self._numbers_t: torch.Tensor | None = None

    @property
    def is_committee(self) -> bool:
        return self.n_members > 1

    @property
    def n_neighbor_builds(self) -> int:
        return self.neighbors.n_builds

    # --- inputs ---------------------------------------------------------------------------
    def _check(self, atoms) -> torch.Tensor:
        """The atomic numbers of `atoms` as a tensor for the model, after checking that the model
        knows them, the charge it can describe, and finite positions (ValueError)."""
        numbers = atoms.arrays["numbers"]
        if not same_array(numbers, self._numbers_key):
            unknown = sorted(set(numbers.tolist()) - set(self.species.tolist()))
            if unknown:
                raise ValueError(
                    f"element(s) {', '.join(chemical_symbols[z] for z in unknown)} not in the model "
                    f"{self.model_path}, which was trained on {', '.join(self.metadata['species_symbols'])}; "
                    "use a model trained on these elements")
            self._numbers_key = numbers.copy()
            self._numbers_t = torch.from_numpy(numbers.astype(np.int64)).to(self.device)
        charge = net_charge(atoms) if "dipole" in self.metadata["outputs"] else 0.0
        if abs(charge) > 1e-6:
            raise ValueError(f"the structure carries a net charge of {charge:g} e, but the dipole "
                             f"model {self.model_path} knows neutral structures only (its charges sum to 0); "
                             "use a model trained on this charge state, or a neutral structure")
        if not np.isfinite(atoms.positions).all():
            bad = np.nonzero(~np.isfinite(atoms.positions).all(axis=1))[0]
            raise ValueError(f"positions of atoms {bad[:10].tolist()} are NaN or inf; "
                             "check the structure (or the MD step that produced it)")
        return self._numbers_t

    def _structure(self, atoms) -> tuple:
        """(positions [N, 3] Å, numbers [N], cell [3, 3] Å, pbc [3]) as numpy arrays, and the
        positions and numbers as tensors for the model, after checking `atoms` (_check)."""
        numbers_t = self._check(atoms)
        positions = np.asarray(atoms.positions, dtype=float)
        positions_t = to_tensor(positions, self.dtype, self.device)
        return (positions, atoms.arrays["numbers"], np.asarray(atoms.cell.array, dtype=float),
                np.asarray(atoms.pbc, dtype=bool), positions_t, numbers_t)

    def _inputs(self, atoms, requires_grad: bool = False):
        """(positions, numbers, edge_index, shift_vectors, cell) tensors for the model."""
        positions, numbers, cell, pbc, positions_t, numbers_t = self._structure(atoms)
        edge_index, shift_vectors = self.neighbors.edges(positions, positions_t, numbers, cell, pbc)
        if requires_grad:
            positions_t.requires_grad_(True)
        cell_t = to_tensor(cell, self.dtype, self.device)
        return positions_t, numbers_t, edge_index, shift_vectors, cell_t

    # --- ASE interface --------------------------------------------------------------------
    @property
    def atoms(self):
        """The structure of the last calculation (ASE's Calculator.atoms): its copy, made when
        first asked from the snapshot that calculate keeps (mlpot.deploy.atoms_snapshot)."""
        snapshot = self.__dict__.get("_snapshot")
        return None if snapshot is None else snapshot.to_atoms()

    @atoms.setter
    def atoms(self, atoms) -> None:
        self._snapshot = None if atoms is None else AtomsSnapshot(atoms, keep=True)

    def check_state(self, atoms, tol=1e-15):
        """Which of positions, numbers, cell, pbc, initial charges/magmoms changed since the last
        calculation: ASE's test made exact (any change recomputes), ~10× cheaper than
        ase.calculators.calculator.compare_atoms for a small molecule (a per-call cost in MD)."""
        previous = self._snapshot
        if previous is None or len(previous) != len(atoms):
            return list(all_changes)
        changes = []
        new_arrays, old_arrays = atoms.arrays, previous.arrays
        for name in ("positions", "numbers"):
            if not same_array(new_arrays[name], old_arrays[name]):
                changes.append(name)
        if not same_array(atoms.cell.array, previous.cell):
            changes.append("cell")
        if not same_array(atoms.pbc, previous.pbc):
            changes.append("pbc")
        if atoms.info.get("charge") != previous.info.get("charge"):
            changes.append("charge")
        for name in ("initial_charges", "initial_magmoms"):
            new, old = new_arrays.get(name), old_arrays.get(name)
            if (new is None) != (old is None) or (new is not None and not same_array(new, old)):
                changes.append(name)
        return changes

    def get_property(self, name, atoms=None, allow_calculation=True):
        # per-atom stresses from a file without per-atom virials: say why and what to do, rather
        # than ASE's "stresses property not implemented" (implemented_properties leaves it out)
        if name == "stresses" and not self.has_atom_virial:
            raise self._no_atom_virial()
        return super().get_property(name, atoms, allow_calculation)

    def _no_atom_virial(self) -> PropertyNotImplementedError:
        """The error for per-atom stresses from model files that hold no per-atom virial."""
        old = [p for p, m, md in zip(self.model_paths, self.modules, self.metadatas) if not has_atom_virial(m, md)]
        if any(md.get("file_format") == "pt2" for md in self.metadatas):
            return PropertyNotImplementedError(
                f"{', '.join(old)} holds no per-atom virial (a .pt2 written before they held one): export it "
                "again (`mlpot export CKPT -o model.pt2`), or give the members' own files")
        return PropertyNotImplementedError(
            f"{', '.join(old)} was exported before per-atom virials existed: export it again with "
            "`mlpot export` for per-atom stresses")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        # Calculator.calculate: self.atoms a copy of atoms, here a snapshot (atoms_snapshot; and
        # no stat of self.directory, which this calculator never writes: ~8 µs of a small call)
        if atoms is None:
            atoms = self.atoms
        elif AtomsSnapshot.applies(atoms):
            self._snapshot = AtomsSnapshot(atoms)
        else:
            self.atoms = atoms.copy()
        want_stress = "stress" in properties
        want_stresses = "stresses" in properties
        for name, wanted in (("stress", want_stress), ("stresses", want_stresses)):
            if wanted and not atoms.pbc.all():
                raise PropertyNotImplementedError(
                    f"{name} is defined only for 3-D periodic systems, but pbc = {atoms.pbc.tolist()}; "
                    f"set atoms.pbc = True and a cell, or do not ask for the {name}")
        if want_stresses and not self.has_atom_virial:
            raise self._no_atom_virial()
        if self.takes_pairs:
            outs, grade = self._pair_outputs(atoms, want_stresses), None
        else:
            outs, grade = self._edge_outputs(atoms, want_stress, want_stresses, properties)
        self.n_evaluations += 1
        self.results = _combine([{k: to_float64(v) for k, v in out.items() if k != "virial" or want_stress}
                                 for out in outs])
        if grade is not None:
            self.results["extrapolation_grade"] = grade
        if want_stress:
            self.results["stress"] = voigt_stress(self.results.pop("virial"), abs(atoms.cell.volume))
        else:
            self.results.pop("virial", None)
        if want_stresses:
            self.results["stresses"] = voigt_stresses(self.results.pop("atom_virial"), abs(atoms.cell.volume))
        if self.halt is not None:
            self.halt(atoms, self.results)
        if self.halt_grade is not None:
            self.halt_grade(atoms, self.results)

    def _pair_outputs(self, atoms, atom_virial: bool = False) -> list:
        """The members' outputs (.pt2 files) on each pair once (SkinNeighborList.pairs), with
        their per-atom virials when asked."""
        positions, numbers, cell, pbc, positions_t, numbers_t = self._structure(atoms)
        pair_index, pair_vectors = self.neighbors.pairs(positions, numbers, cell, pbc)
        outs = [module.forward_pairs(positions_t, numbers_t, pair_index, pair_vectors, atom_virial)
                for module in self.modules]
        if self.n_members > len(outs):    # one committee .pt2: outputs [M, ...]
            return [{k: v[m] for k, v in outs[0].items()} for m in range(self.n_members)]
        return outs

    def _edge_outputs(self, atoms, want_stress: bool, want_stresses: bool, properties) -> tuple:
        """(the members' outputs on the symmetric edge list: TorchScript files, or a committee
        mixing kinds; a wACSF / ACSF model's extrapolation grade [N] when wanted, else None)."""
        positions, numbers, edge_index, shift_vectors, cell = self._inputs(atoms)
        def member(module):
            with torch.jit.optimized_execution(False):
                if want_stresses:
                    return module(positions, numbers, edge_index, shift_vectors, cell, len(atoms), want_stress, True)
                return module(positions, numbers, edge_index, shift_vectors, cell, len(atoms), want_stress)

        if self.stacked is not None and not want_stresses:
            with torch.jit.optimized_execution(False):
                out = self.stacked(positions, numbers, edge_index, shift_vectors, len(atoms), want_stress)
            outs = [{k: v[m] for k, v in out.items()} for m in range(len(self.modules))]
        elif self._pool is not None:
            outs = list(self._pool.map(member, self.modules))
        else:
            outs = [member(m) for m in self.modules]
        grade = None
        if self.has_grade and ("extrapolation_grade" in properties or self.halt_grade is not None):
            with torch.jit.optimized_execution(False):
                grade = self.module.extrapolation_grade(positions, numbers, edge_index, shift_vectors, cell)
            grade = grade.detach().cpu().double().numpy()
        return outs, grade

    def get_hessian(self, atoms=None) -> np.ndarray:
        """∂²E/∂r∂r [3N, 3N] eV/Å², symmetric, rows/columns ordered (atom 0 x, y, z, atom 1 x, ...):
        by automatic differentiation (TorchScript files), or for .pt2 files (no autograd in a
        package) by a five-point central difference of their forces (HESSIAN_STEP). Computed in
        the model's dtype (export float64 for vibrational analysis)."""
        atoms = self.atoms if atoms is None else atoms
        if atoms is None:
            raise ValueError("get_hessian needs atoms: call get_hessian(atoms)")
        if self.dtype != torch.float64:
            warnings.warn(f"{self.model_path} is a {self.metadata['dtype']} file: its Hessian carries float32 "
                          "rounding (~1e-3 eV/Å², a few cm⁻¹ in soft modes); export it with `mlpot export "
                          "--dtype float64` for vibrational analysis", stacklevel=2)
        if self.takes_pairs:
            return self._difference_hessian(atoms)
        for path, module, metadata in zip(self.model_paths, self.modules, self.metadatas):
            if metadata.get("file_format") == "pt2":
                raise ValueError(f"{path}: a committee mixing .pt2 and TorchScript files has no Hessian; give "
                                 "every member as .pt2, or every member as .pt")
            if getattr(module, "potential", None) is None:
                raise ValueError(f"{path} has no scripted `potential` submodule; re-export it with `mlpot export`")
        positions, numbers, edge_index, shift_vectors, cell = self._inputs(atoms, requires_grad=True)
        n = len(atoms)
        inputs = structure_inputs(positions, numbers, edge_index, shift_vectors, cell, n)
        hessians = [self._member_hessian(module, inputs, positions, n) for module in self.modules]
        hessian = np.mean(hessians, axis=0)
        return 0.5 * (hessian + hessian.T)

    def _difference_hessian(self, atoms) -> np.ndarray:
        """get_hessian of .pt2 files: −∂F/∂r by the five-point stencil
        (−F(+2h) + 8F(+h) − 8F(−h) + F(−2h)) / 12h of the members' mean forces, h = HESSIAN_STEP
        of the dtype (float64: error ~1e-9 eV/Å² from the step, ~1e-12 from rounding)."""
        work = atoms.copy()
        base = np.array(atoms.positions, dtype=float)
        step = HESSIAN_STEP["float64" if self.dtype == torch.float64 else "float32"]
        n = len(atoms)
        rows = []
        for k in range(3 * n):
            forces = []
            for shift in (2, 1, -1, -2):
                work.positions = base
                work.positions[k // 3, k % 3] += shift * step
                forces.append(np.mean([o["forces"].detach().cpu().double().numpy() for o in self._pair_outputs(work)],
                                      axis=0).reshape(-1))
            rows.append(-(-forces[0] + 8.0 * forces[1] - 8.0 * forces[2] + forces[3]) / (12.0 * step))
        hessian = np.array(rows)
        return 0.5 * (hessian + hessian.T)

    def _member_hessian(self, module, inputs, positions, n: int) -> np.ndarray:
        potential = module.potential
        with torch.jit.optimized_execution(False):
            forces = potential(inputs, True, False, True)["forces"].reshape(-1)
        rows = []
        for k in range(3 * n):
            (grad,) = torch.autograd.grad([forces[k]], [positions], retain_graph=k < 3 * n - 1,
                                          allow_unused=True)
            rows.append(torch.zeros(3 * n, dtype=self.dtype, device=self.device) if grad is None
                        else -grad.reshape(-1))
        return torch.stack(rows).detach().cpu().double().numpy()


# what each halt setting needs: (the refusal where it does not apply, what a valid threshold is)
HALT_NEEDS = {
    "halt_deviation": ("halt_deviation needs a committee: pass a list of model files (the members of a "
                       "`mlpot train` run with training.ensemble)", "a positive force in eV/Å"),
    "halt_extrapolation": ("halt_extrapolation needs a single wACSF or ACSF model file (their descriptors' range "
                           "is the grade); for SchNet, use a committee and halt_deviation",
                           "a positive number of training stds"),
}


def checked_halt(setting: str, applies: bool, threshold: float | None, action: str, path: str | None):
    """None when `setting` (halt_deviation: the committee's largest per-atom force deviation, eV/Å;
    halt_extrapolation: a single wACSF / ACSF model's largest extrapolation grade) is unset, else
    uncertainty_halt after refusing a model it does not apply to or a threshold that is not positive."""
    if threshold is None:
        return None
    refusal, valid = HALT_NEEDS[setting]
    if not applies:
        raise ValueError(refusal)
    if not threshold > 0:
        raise ValueError(f"{setting} must be {valid}, got {threshold!r}")
    return uncertainty_halt(setting, threshold, action, path)


def uncertainty_halt(setting: str, threshold: float, action: str, path: str | None):
    """A function (atoms, results) that acts when the largest per-atom value of the measure of
    `setting` (committee.HALT_MEASURES) exceeds `threshold`: appends the frame with the per-atom
    values to `path` (extxyz) if given, then raises ExtrapolationError ("raise") or goes on
    ("write": collect such frames along a run)."""
    if action not in ("raise", "write"):
        raise ValueError(f"on_deviation must be raise or write, got {action!r}")
    if action == "write" and path is None:
        raise ValueError('on_deviation="write" needs deviation_file, the extxyz file to append frames to')
    key = HALT_MEASURES[setting][0]

    def halt(atoms, results) -> None:
        per_atom = np.asarray(results[key])
        largest = float(per_atom.max()) if per_atom.size else 0.0
        if not largest > threshold:
            return
        if path is not None:
            from ase.io import write  # lazy: ase.io loads scipy (~0.8 s); needed only for a deviation file

            frame = atoms.copy()
            frame.arrays[key] = per_atom
            frame.info["uncertainty"] = largest
            frame.calc = SinglePointCalculator(frame, energy=results["energy"], forces=results["forces"])
            write(path, frame, format="extxyz", append=True)
        if action == "raise":
            raise ExtrapolationError(largest, int(np.argmax(per_atom)), float(threshold), path, setting)

    return halt


def net_charge(atoms) -> float:
    """The net charge of `atoms` in e: atoms.info["charge"] if set, else the sum of the initial
    charges (0 when neither is set)."""
    if atoms.info.get("charge") is not None:
        return float(atoms.info["charge"])
    charges = atoms.arrays.get("initial_charges")
    return float(np.sum(charges)) if charges is not None else 0.0


def _combine(outs: list) -> dict:
    """ASE results from the members' outputs (numpy): one member as it is, a committee as the
    mean plus its spread (mlpot.deploy.committee)."""
    if len(outs) == 1:
        results = {"energy": float(outs[0]["energy"].sum()), "energies": outs[0]["energies"],
                   "forces": outs[0]["forces"]}
    else:
        results = {"energies": np.mean([o["energies"] for o in outs], axis=0)}
        results.update(committee_statistics([o["energy"].sum() for o in outs], [o["forces"] for o in outs]))
    results["free_energy"] = results["energy"]
    for name in ("virial", "atom_virial", "dipole"):
        if name in outs[0]:
            results[name] = outs[0][name] if len(outs) == 1 else np.mean([o[name] for o in outs], axis=0)
    return results
