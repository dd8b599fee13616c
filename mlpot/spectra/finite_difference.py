"""Hessian and dipole derivatives of any ASE calculator by central finite differences
(the reference for analytic Hessians, and how GFN2-xTB's harmonic spectrum is computed)."""
from __future__ import annotations

import numpy as np
from ase.calculators.calculator import PropertyNotImplementedError
from tqdm import tqdm


def finite_difference_derivatives(atoms, delta: float = 0.01, dipole: bool = True,
                                  progress: bool = False):
    """Central differences of forces (and dipole) for displacements ±delta (Å) of each
    Cartesian coordinate, using the calculator attached to `atoms` (6N evaluations).

    Returns (hessian [3N, 3N] eV/Å², symmetrised; dipole_derivatives [3N, 3] e·Å/Å or
    None when dipole=False or the calculator has no dipole).
    """
    if atoms.calc is None:
        raise ValueError("attach a calculator to the atoms first (atoms.calc = ...)")
    if not delta > 0:
        raise ValueError(f"delta must be positive (Å), got {delta}")
    work = atoms.copy()
    work.calc = atoms.calc
    x0 = atoms.get_positions()
    n = len(atoms)
    hessian = np.empty((3 * n, 3 * n))
    dmu = np.empty((3 * n, 3)) if dipole else None
    steps = range(3 * n)
    if progress:
        steps = tqdm(steps, desc="finite differences", unit="coord", leave=False)
    for k in steps:
        a, i = divmod(k, 3)
        values = []
        for sign in (+1, -1):
            x = x0.copy()
            x[a, i] += sign * delta
            work.set_positions(x)
            forces = work.get_forces()
            mu = None
            if dmu is not None:
                try:
                    mu = work.get_dipole_moment()
                except PropertyNotImplementedError:
                    dmu = None
            values.append((forces, mu))
        (f_plus, mu_plus), (f_minus, mu_minus) = values
        hessian[k] = -(f_plus - f_minus).ravel() / (2 * delta)
        if dmu is not None:
            dmu[k] = (mu_plus - mu_minus) / (2 * delta)
    return 0.5 * (hessian + hessian.T), dmu
