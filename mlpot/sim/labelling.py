"""Reference data from any ASE calculator: label structures (energy, forces, dipole when
the calculator has one), sample them by Langevin MD at a temperature or by normal-mode
sampling, and write them into an mlpot store (ASE SQLite, eV/Å, e·Å).

The default reference is GFN2-xTB through tblite (energies in eV, forces in eV/Å, dipole
in e·Å — tblite's ASE calculator multiplies its atomic-unit dipole by Bohr).
"""
from __future__ import annotations

import ctypes

import numpy as np
from ase import units
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.singlepoint import SinglePointCalculator
from ase.optimize import BFGS
from tqdm import tqdm

from mlpot.data.store import write_store
from mlpot.deploy.skin_neighbors import OverlapError
from mlpot.sim.md import langevin
from mlpot.spectra import finite_difference_derivatives, normal_modes
from mlpot.spectra.units import EV_A2_AMU_TO_CM1

LABELS = ("energy", "forces", "dipole")


def default_calculator(method: str = "GFN2-xTB", threads: int | None = 1):
    """tblite's ASE calculator for `method` (GFN2-xTB, GFN1-xTB, IPEA1-xTB), silent.

    threads: OpenMP threads for tblite (None leaves OMP_NUM_THREADS alone). One is fastest
    for small molecules and avoids a >10x slowdown when the cores are shared.
    """
    try:
        from tblite.ase import TBLite  # optional: tblite is the `ref` extra
    except ImportError as exc:
        raise ImportError("the default reference needs tblite: pip install 'mlpot[ref]' "
                          "(or tblite), or pass another ASE calculator") from exc
    if threads is not None:
        set_openmp_threads(threads)
    return TBLite(method=method, verbosity=0)


def set_openmp_threads(threads: int) -> bool:
    """Set the thread count of the system OpenMP runtime (libgomp, which tblite uses; torch
    ships its own copy and is not affected). Returns False where there is no libgomp."""
    try:
        ctypes.CDLL("libgomp.so.1").omp_set_num_threads(int(threads))
    except (OSError, AttributeError):
        return False
    return True


def count_calls(calculator):
    """Make `calculator` count its calculations in `calculator.reference_calls` and return it.

    One count per call of its `calculate` method, i.e. per electronic-structure evaluation,
    however many properties (energy, forces, dipole) that evaluation yields; results ASE serves
    from its cache are not counted. Counting twice is harmless (the first counter is kept).
    A calculator without `calculate` gets reference_calls = None (not counted)."""
    if hasattr(calculator, "reference_calls"):
        return calculator
    calculate = getattr(calculator, "calculate", None)
    if calculate is None:
        calculator.reference_calls = None
        return calculator

    def counted(*args, **kwargs):
        calculator.reference_calls += 1
        return calculate(*args, **kwargs)

    calculator.reference_calls = 0
    calculator.calculate = counted
    return calculator


def calculator_name(calculator) -> str:
    """A short description of a calculator for the store's metadata."""
    method = getattr(calculator, "parameters", {}).get("method")
    name = type(calculator).__name__
    return f"{method} ({name})" if method else name


def labelled_copy(atoms, properties=LABELS):
    """A copy of `atoms` whose SinglePointCalculator holds the labels computed by the
    calculator attached to `atoms` (only those it implements). Raises on NaN results."""
    getters = {"energy": atoms.get_potential_energy,
               "forces": lambda: atoms.get_forces(apply_constraint=False),
               "dipole": atoms.get_dipole_moment, "stress": atoms.get_stress}
    results = {}
    for name in properties:
        if name not in getters:
            raise ValueError(f"unknown label {name!r}; choose from {', '.join(getters)}")
        if name not in getattr(atoms.calc, "implemented_properties", ()):
            continue
        try:
            value = np.array(getters[name](), dtype=float)
        except PropertyNotImplementedError:
            continue
        if not np.all(np.isfinite(value)):
            raise ValueError(f"the calculator returned NaN/inf {name} for {atoms.get_chemical_formula()}")
        results[name] = value if value.ndim else float(value)
    if "energy" not in results:
        raise ValueError(f"calculator {type(atoms.calc).__name__} gives no energy")
    copy = atoms.copy()
    copy.calc = SinglePointCalculator(copy, **results)
    return copy


def _progress(iterable, enabled: bool, **kwargs):
    if not enabled:
        return iterable
    return tqdm(iterable, **kwargs)


def label(structures, calculator, properties=LABELS, progress: bool = True) -> list:
    """Label each structure with `calculator`; returns new Atoms with SinglePointCalculators."""
    out = []
    for atoms in _progress(list(structures), progress, desc="labelling", unit="struct"):
        work = atoms.copy()
        work.calc = calculator
        out.append(labelled_copy(work, properties))
    return out


def sample_md(atoms, calculator, temperature: float, n_samples: int, interval: int = 10,
              timestep: float = 0.5, friction: float = 0.02, equilibration: int = 200,
              seed: int = 0, properties=LABELS, progress: bool = True) -> list:
    """Labelled snapshots of Langevin MD at `temperature` (K), one every `interval` steps of
    `timestep` (fs) after `equilibration` steps; friction in 1/fs. The labels are the
    calculator's results at each snapshot (no extra evaluations)."""
    if n_samples < 0 or interval < 1 or not temperature > 0 or not timestep > 0:
        raise ValueError("need n_samples >= 0, interval >= 1, temperature > 0 K and timestep > 0 fs")
    rng = np.random.default_rng(seed)
    work, dyn = langevin(atoms, calculator, temperature, timestep, friction, rng)
    if equilibration:
        dyn.run(equilibration)
    samples = []
    for _ in _progress(range(n_samples), progress, desc=f"MD {temperature:g} K", unit="struct"):
        dyn.run(interval)
        snapshot = labelled_copy(work, properties)
        snapshot.set_constraint()
        samples.append(snapshot)
    return samples


def normal_mode_displacements(atoms, modes, temperature: float, n_samples: int,
                              min_frequency: float = 100.0, seed: int = 0) -> list:
    """Structures displaced along normal modes with classical Boltzmann amplitudes:
    Q_m ~ N(0, k_B T / ω_m²) in mass-weighted coordinates, x = x₀ + Σ_m Q_m e_m / √m.

    modes: mlpot.spectra.NormalModes of `atoms` (from the reference Hessian). Modes below
    `min_frequency` cm⁻¹ (soft torsions, imaginary modes) are sampled as if at that frequency.
    Returns unlabelled Atoms.
    """
    if not temperature > 0 or n_samples < 0:
        raise ValueError("need temperature > 0 K and n_samples >= 0")
    rng = np.random.default_rng(seed)
    freqs = np.maximum(modes.frequencies, min_frequency)
    eigenvalues = (freqs / EV_A2_AMU_TO_CM1) ** 2                       # eV/(Å² amu)
    sigma = np.sqrt(units.kB * temperature / eigenvalues)                # Å √amu
    vectors = modes.mass_weighted / np.sqrt(modes.masses)[None, :, None]  # [M, N, 3] 1/√amu
    out = []
    for _ in range(n_samples):
        q = rng.normal(size=len(freqs)) * sigma
        displaced = atoms.copy()
        displaced.calc = None
        displaced.positions = atoms.positions + np.einsum("m,mai->ai", q, vectors)
        out.append(displaced)
    return out


def optimise(atoms, calculator, fmax: float, steps: int = 500, require: bool = True):
    """BFGS to fmax (eV/Å); returns a copy at the minimum (no calculator) and the step count.
    If it does not converge in `steps`, or a step brings two atoms on top of each other (a model
    without data there: mlpot.deploy.skin_neighbors.OverlapError): raise when `require`, else return the
    last geometry before (the caller reports it; a negative step count marks it)."""
    work = atoms.copy()
    work.calc = calculator
    opt = BFGS(work, logfile=None)
    last = [work.positions.copy()]
    opt.attach(lambda: last.__setitem__(0, work.positions.copy()))
    try:
        converged = opt.run(fmax=fmax, steps=steps)
    except OverlapError:
        if require:
            raise
        work.positions = last[0]
        converged = False
    if not converged and require:
        raise RuntimeError(f"geometry optimisation did not reach fmax={fmax} eV/Å in {steps} steps")
    result = work.copy()
    result.calc = None
    n = opt.get_number_of_steps()
    return result, (n if converged else -n)


def reference_modes(atoms, calculator, delta: float = 0.01):
    """Normal modes of `atoms` with `calculator` from a finite-difference Hessian; also
    returns the dipole derivatives ([3N, 3] e·Å/Å, or None)."""
    work = atoms.copy()
    work.calc = calculator
    hessian, dmu = finite_difference_derivatives(work, delta=delta)
    periodic = bool(work.pbc.any())
    modes = normal_modes(hessian, work.get_masses(), work.positions,
                         project="translations" if periodic else "molecule")
    return modes, dmu


def sample_normal_modes(atoms, calculator, temperature: float, n_samples: int, modes=None,
                        min_frequency: float = 100.0, seed: int = 0, properties=LABELS,
                        progress: bool = True) -> list:
    """Labelled normal-mode samples around `atoms` (ideally a minimum of `calculator`);
    the modes come from the calculator's finite-difference Hessian unless given."""
    if modes is None:
        modes, _ = reference_modes(atoms, calculator)
    structures = normal_mode_displacements(atoms, modes, temperature, n_samples, min_frequency, seed)
    return label(structures, calculator, properties, progress)


def write_reference(path, structures, calculator, *, force: bool = False, settings: dict | None = None) -> int:
    """Write labelled structures to an mlpot store, recording the calculator and the
    sampling settings in its metadata. Returns the number of rows."""
    extra = {"reference": {"calculator": calculator_name(calculator), **(settings or {})}}
    return write_store(path, structures, force=force, source=calculator_name(calculator),
                       source_format="mlpot.sim.labelling",
                       source_units={"energy": "eV", "forces": "eV/Å", "dipole": "e*Å"},
                       extra_metadata=extra)
