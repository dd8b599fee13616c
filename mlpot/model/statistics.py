"""Energy statistics fitted on the training set: per-element reference energies by least
squares, and the scale of the network output."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from mlpot import keys as K
from mlpot.model.nn.pair_repulsion import fit_contact_radii


def composition_matrix(numbers: Sequence[np.ndarray], species: Sequence[int]) -> np.ndarray:
    """[B, n_species] count of each element in each structure."""
    column = {int(z): k for k, z in enumerate(species)}
    counts = np.zeros((len(numbers), len(species)))
    for b, z in enumerate(numbers):
        for value, n in zip(*np.unique(np.asarray(z), return_counts=True)):
            if int(value) not in column:
                raise ValueError(f"element Z={int(value)} in structure {b} is not among the species {list(species)}")
            counts[b, column[int(value)]] = n
    return counts


def fit_atomrefs(numbers: Sequence[np.ndarray], energies: np.ndarray,
                 species: Sequence[int]) -> dict[int, float]:
    """Per-element reference energies E_ref[Z] (eV) minimising Σ_b (E_b − Σ_Z n_bZ E_ref[Z])².

    When compositions are collinear (e.g. one molecule) the minimum-norm solution is taken,
    which still reproduces the mean energy of every composition exactly.
    """
    energies = np.asarray(energies, dtype=float)
    if not np.all(np.isfinite(energies)):
        raise ValueError("energies contain NaN or inf; clean the data before fitting")
    A = composition_matrix(numbers, species)
    coef = np.linalg.lstsq(A, energies, rcond=None)[0]
    return {int(z): float(c) for z, c in zip(species, coef)}


def energy_scale(numbers: Sequence[np.ndarray], energies: np.ndarray, atomrefs: dict[int, float],
                 forces: Sequence[np.ndarray] | None = None) -> float:
    """Scale (eV) of the per-atom network output: the RMS of force components when forces
    are given (the quantity training is dominated by), else the standard deviation of the
    per-atom energy left after the reference energies. Never below 1e-3 eV."""
    if forces is not None and len(forces):
        all_forces = np.concatenate([np.asarray(f).reshape(-1) for f in forces])
        scale = float(np.sqrt(np.mean(all_forces ** 2)))
    else:
        residual = [(e - sum(atomrefs[int(z)] for z in zs)) / len(zs) for zs, e in zip(numbers, energies)]
        scale = float(np.std(residual))
    return max(scale, 1e-3)


def fit_statistics(potential, graphs: Sequence[dict]) -> dict:
    """Fit everything a Potential learns from the training set before training starts:
    reference energies, the output scale, the pair repulsion's contact radii and (if the representation has one, e.g. wACSF)
    the standardisation of its descriptors. `graphs` are mlpot.data.atoms_to_graph dicts
    with labels. Returns what was fitted, for the run's log."""
    with_energy = [g for g in graphs if K.ENERGY in g]
    if not with_energy:
        raise ValueError("no training structure has an energy label; mlpot trains on energies (and forces)")
    numbers = [g[K.ATOMIC_NUMBERS] for g in with_energy]
    energies = np.array([float(g[K.ENERGY][0]) for g in with_energy])
    forces = [g[K.FORCES] for g in with_energy if K.FORCES in g] or None
    atomrefs = fit_atomrefs(numbers, energies, potential.species)
    scale = energy_scale(numbers, energies, atomrefs, forces)
    potential.set_energy_statistics(atomrefs, scale=scale, shift=0.0)
    fitted = {"atomrefs_eV": atomrefs, "energy_scale_eV": scale}
    if float(potential.repulsion.strength) > 0:
        fitted["repulsion"] = fit_contact_radii(potential.repulsion, graphs, potential.species)
    fit_representation = getattr(potential.representation, "fit_standardization", None)
    if fit_representation is not None:
        fitted["representation"] = fit_representation(graphs)
    return fitted
