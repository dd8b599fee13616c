"""Demo stage 3: use the exported model as a chemist would — geometry
optimisation, harmonic frequencies and IR intensities, NVT MD and spectra from it."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import units
from ase.build import minimize_rotation_and_translation
from tqdm import tqdm

from mlpot.sim.labelling import optimise
from mlpot.sim.md import langevin
from mlpot.spectra import (finite_difference_derivatives, ir_intensities, ir_spectrum, match_modes, normal_modes,
                           power_spectrum)


@dataclass
class Trajectory:
    """Frames of an MD run every `dt` fs: velocities [T, N, 3] Å/fs, dipoles [T, 3] e·Å
    (None without a dipole), temperature [T] K, potential energy [T] eV."""
    dt: float
    velocities: np.ndarray
    dipoles: np.ndarray | None
    temperature: np.ndarray
    potential_energy: np.ndarray
    error: str = ""


@dataclass
class Harmonic:
    minimum: object
    modes: object
    intensities: np.ndarray
    optimisation_steps: int     # negative: did not converge in that many steps
    extra: dict = field(default_factory=dict)


def harmonic_analysis(start, calc, fmax: float, max_steps: int = 1000, align_to=None) -> Harmonic:
    """Optimise `start` with `calc`, superpose the minimum on `align_to` (so that normal modes
    of two methods can be paired by overlap), then normal modes (analytic Hessian when the
    calculator has get_hessian, else finite differences) and IR intensities
    (finite-difference dipole derivatives, km/mol)."""
    minimum, steps = optimise(start, calc, fmax=fmax, steps=max_steps, require=False)
    if align_to is not None:
        minimize_rotation_and_translation(align_to, minimum)
    work = minimum.copy()
    work.calc = calc
    fd_hessian, dmu = finite_difference_derivatives(work, delta=0.005)
    extra = {}
    if hasattr(calc, "get_hessian"):
        hessian = calc.get_hessian(work)
        extra["analytic_vs_fd_hessian_max_abs"] = float(np.abs(hessian - fd_hessian).max())
    else:
        hessian = fd_hessian
    modes = normal_modes(hessian, work.get_masses(), work.positions)
    intensities = ir_intensities(dmu, modes) if dmu is not None else np.zeros(len(modes.frequencies))
    return Harmonic(minimum, modes, intensities, steps, extra)


def run_nvt(start, calc, temperature: float, time_fs: float, timestep: float, seed: int = 0,
            friction: float = 0.002, hot_start: bool = True, progress: bool = True) -> Trajectory:
    """Langevin NVT MD from `start`, recording every step. Velocities are drawn at 2T when
    `hot_start` (from a minimum, equipartition moves half of the kinetic energy into the
    potential, so the run starts near T instead of T/2; the weak friction, 1/fs, would take
    ~1/friction to get there). A failure (e.g. an exploding model) is kept in `error`."""
    work, dyn = langevin(start, calc, temperature, timestep, friction, np.random.default_rng(seed),
                         start_temperature=(2 if hot_start else 1) * temperature)
    has_dipole = "dipole" in getattr(calc, "implemented_properties", ())
    frames = {"v": [], "mu": [], "T": [], "E": []}

    def record():
        frames["v"].append(work.get_velocities() * units.fs)          # Å/fs
        frames["T"].append(work.get_temperature())
        frames["E"].append(work.get_potential_energy())
        if has_dipole:
            frames["mu"].append(work.get_dipole_moment())

    n_steps = int(round(time_fs / timestep))
    error = ""
    steps = range(n_steps)
    if progress:
        steps = tqdm(steps, desc=f"NVT MD {temperature:g} K", unit="step", mininterval=1.0)
    try:
        record()
        for _ in steps:
            dyn.run(1)
            record()
    except (ValueError, RuntimeError) as exc:
        error = f"MD stopped after {len(frames['v']) - 1} of {n_steps} steps: {exc}"
    return Trajectory(timestep, np.array(frames["v"]), np.array(frames["mu"]) if has_dipole else None,
                      np.array(frames["T"]), np.array(frames["E"]), error)


def md_spectra(traj: Trajectory, masses) -> dict:
    """Power spectrum (VACF) and IR spectrum (dipole) of a trajectory, Hann window, 4x zero
    padding, correlation up to half the run."""
    out = {}
    if len(traj.velocities) >= 8:
        out["power"] = power_spectrum(traj.velocities, masses, traj.dt)
        if traj.dipoles is not None:
            out["ir"] = ir_spectrum(traj.dipoles, traj.dt)
    return out


def harmonic_comparison(ref_modes, ref_intensities, model: Harmonic, strong: float = 0.2) -> dict:
    """How a model's harmonic analysis compares with the reference's: frequency MAE and worst
    mode (cm⁻¹, modes paired by eigenvector overlap), and the largest relative error of the IR
    intensity of the strong bands (above `strong` × the strongest reference band)."""
    pairs = match_modes(ref_modes, model.modes, by="overlap")
    diff = np.abs(model.modes.frequencies[pairs] - ref_modes.frequencies)
    bands = ref_intensities > strong * ref_intensities.max()
    relative = np.abs(model.intensities[pairs][bands] / ref_intensities[bands] - 1.0)
    return {"frequency_mae_cm1": float(diff.mean()), "worst_mode_cm1": float(diff.max()),
            "worst_mode_reference_cm1": float(ref_modes.frequencies[np.argmax(diff)]),
            "strong_ir_intensity_max_rel_error": float(relative.max())}
