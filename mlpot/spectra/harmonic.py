"""Harmonic normal modes from a Hessian and IR intensities from dipole derivatives.

Pure functions on numpy arrays. Units: Hessian eV/Å², masses amu, positions Å,
dipole derivatives dμ_k/dx_j in e·Å/Å (= e), frequencies cm⁻¹ (imaginary ones are
returned as negative numbers), IR intensities (D/Å)²/amu or km/mol as ASE's Infrared.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlpot.spectra.units import D2A2AMU_TO_KM_PER_MOL, DEBYE, EV_A2_AMU_TO_CM1

PROJECTIONS = ("auto", "molecule", "translations", "none")


@dataclass
class NormalModes:
    """Result of a harmonic analysis of M modes of N atoms.

    frequencies: [M] cm⁻¹, ascending; imaginary frequencies as negative numbers.
    eigenvalues: [M] eV/(Å²·amu), eigenvalues of the mass-weighted Hessian.
    mass_weighted: [M, N, 3] orthonormal eigenvectors of the mass-weighted Hessian.
    displacements: [M, N, 3] Cartesian displacement patterns e/√m, each normalised to 1.
    masses: [N] amu.
    """
    frequencies: np.ndarray
    eigenvalues: np.ndarray
    mass_weighted: np.ndarray
    displacements: np.ndarray
    masses: np.ndarray


def _as_square_hessian(hessian, n_atoms: int) -> np.ndarray:
    h = np.asarray(hessian, dtype=float)
    if h.size != (3 * n_atoms) ** 2:
        raise ValueError(f"Hessian has {h.size} entries; expected (3N)² = {(3 * n_atoms) ** 2} "
                         f"for N = {n_atoms} atoms (shape [3N, 3N] or [N, 3, N, 3], eV/Å²)")
    h = h.reshape(3 * n_atoms, 3 * n_atoms)
    if not np.all(np.isfinite(h)):
        raise ValueError("Hessian contains NaN or inf; check the calculator that produced it")
    return 0.5 * (h + h.T)


def rigid_body_basis(masses, positions=None, rotations: bool = True) -> np.ndarray:
    """Orthonormal basis [3N, k] of mass-weighted translations (and rotations about the
    centre of mass when `rotations`); k = 3, 5 (linear molecule) or 6."""
    m = np.asarray(masses, dtype=float)
    sqrt_m = np.sqrt(m)
    vectors = []
    for k in range(3):
        t = np.zeros((len(m), 3))
        t[:, k] = sqrt_m
        vectors.append(t.ravel())
    if rotations:
        r = np.asarray(positions, dtype=float)
        r = r - (m[:, None] * r).sum(0) / m.sum()
        for k in range(3):
            axis = np.zeros(3)
            axis[k] = 1.0
            vectors.append((np.cross(axis, r) * sqrt_m[:, None]).ravel())
    d = np.array(vectors).T
    u, s, _ = np.linalg.svd(d, full_matrices=False)
    return u[:, s > 1e-6 * s.max()]


def normal_modes(hessian, masses, positions=None, project: str = "auto") -> NormalModes:
    """Harmonic analysis: diagonalise the mass-weighted Hessian H_ij / √(m_i m_j).

    hessian: [3N, 3N] or [N, 3, N, 3] eV/Å²; masses: [N] amu; positions: [N, 3] Å.
    project: "molecule" removes translations and rotations (3N-6 modes, 3N-5 if linear),
    "translations" removes only translations (crystals), "none" keeps all 3N modes,
    "auto" is "molecule" when positions are given, else "none".
    """
    if project not in PROJECTIONS:
        raise ValueError(f"project must be one of {PROJECTIONS}, got {project!r}")
    m = np.asarray(masses, dtype=float).ravel()
    if np.any(~np.isfinite(m)) or np.any(m <= 0):
        raise ValueError("masses must be positive and finite (amu)")
    n = len(m)
    h = _as_square_hessian(hessian, n)
    if project == "auto":
        project = "molecule" if positions is not None else "none"
    if project == "molecule" and positions is None:
        raise ValueError("project='molecule' needs the positions (Å) to build the rotations")
    inv_sqrt_m = np.repeat(m ** -0.5, 3)
    h_mw = inv_sqrt_m[:, None] * h * inv_sqrt_m[None, :]
    if project == "none":
        basis = np.eye(3 * n)
    else:
        rigid = rigid_body_basis(m, positions, rotations=project == "molecule")
        # orthonormal complement of the rigid-body motions: the internal coordinates
        u, _, _ = np.linalg.svd(np.eye(3 * n) - rigid @ rigid.T)
        basis = u[:, :3 * n - rigid.shape[1]]
    eigenvalues, vectors = np.linalg.eigh(basis.T @ h_mw @ basis)
    mass_weighted = (basis @ vectors).T                                   # [M, 3N]
    displacements = mass_weighted * inv_sqrt_m[None, :]
    displacements /= np.linalg.norm(displacements, axis=1, keepdims=True)
    return NormalModes(frequencies=eigenvalue_to_wavenumber(eigenvalues), eigenvalues=eigenvalues,
                       mass_weighted=mass_weighted.reshape(-1, n, 3),
                       displacements=displacements.reshape(-1, n, 3), masses=m)


def eigenvalue_to_wavenumber(eigenvalues) -> np.ndarray:
    """Eigenvalues of the mass-weighted Hessian, eV/(Å²·amu) -> cm⁻¹ (negative if imaginary)."""
    ev = np.asarray(eigenvalues, dtype=float)
    return np.sign(ev) * np.sqrt(np.abs(ev)) * EV_A2_AMU_TO_CM1


def ir_intensities(dipole_derivatives, modes: NormalModes, unit: str = "km/mol") -> np.ndarray:
    """IR intensity of each mode, |dμ/dQ|² with Q the mass-weighted normal coordinate.

    dipole_derivatives: [3N, 3] (row j = ∂μ/∂x_j) or [N, 3, 3] ([a, i, k] = ∂μ_k/∂r_ai),
    in e·Å/Å. unit: "km/mol" (integrated absorption) or "(D/A)2/amu" (ASE's default).
    Returns [M] in that unit, the same numbers as ase.vibrations.Infrared (up to ASE's
    rounded factor 42.255 for km/mol).
    """
    m = modes.masses
    d = np.asarray(dipole_derivatives, dtype=float)
    if d.size != 9 * len(m):
        raise ValueError(f"dipole derivatives have {d.size} entries; expected [3N, 3] = "
                         f"[{3 * len(m)}, 3] (e·Å/Å)")
    d = d.reshape(3 * len(m), 3)
    if not np.all(np.isfinite(d)):
        raise ValueError("dipole derivatives contain NaN or inf")
    per_mass = d * np.repeat(m ** -0.5, 3)[:, None]                  # e/√amu
    dmu_dq = modes.mass_weighted.reshape(len(modes.frequencies), -1) @ per_mass  # [M, 3]
    intensity = (dmu_dq ** 2).sum(1) / DEBYE ** 2                    # (D/Å)²/amu
    if unit == "km/mol":
        return intensity * D2A2AMU_TO_KM_PER_MOL
    if unit in ("(D/A)2/amu", "(D/Å)^2/amu"):
        return intensity
    raise ValueError(f"unknown IR intensity unit {unit!r}; use 'km/mol' or '(D/A)2/amu'")


def broaden(frequencies, intensities, wavenumbers, width: float = 10.0,
            shape: str = "lorentzian") -> np.ndarray:
    """Stick spectrum -> continuous spectrum on `wavenumbers` (cm⁻¹). width is the full width
    at half maximum (cm⁻¹); each peak has unit area times its intensity (per cm⁻¹)."""
    f = np.asarray(frequencies, dtype=float)[:, None]
    a = np.asarray(intensities, dtype=float)[:, None]
    x = np.asarray(wavenumbers, dtype=float)[None, :]
    if not width > 0:
        raise ValueError(f"width must be positive (cm⁻¹), got {width}")
    if shape == "lorentzian":
        g = width / 2
        profile = g / np.pi / ((x - f) ** 2 + g ** 2)
    elif shape == "gaussian":
        sigma = width / (2 * np.sqrt(2 * np.log(2)))
        profile = np.exp(-0.5 * ((x - f) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    else:
        raise ValueError(f"unknown line shape {shape!r}; use 'lorentzian' or 'gaussian'")
    return (a * profile).sum(0)
