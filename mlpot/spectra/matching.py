"""Pairing the normal modes of two calculations of the same molecule (e.g. a model and its
reference) and the mean absolute error of their frequencies."""
from __future__ import annotations

import numpy as np

from mlpot.spectra.harmonic import NormalModes


def match_modes(reference: NormalModes, other: NormalModes, by: str = "order") -> np.ndarray:
    """Index into `other` of the mode paired with each mode of `reference` [M].

    by="order": the k-th lowest with the k-th lowest (standard for comparing potentials).
    by="overlap": the assignment maximising Σ |⟨e_ref|e_other⟩|² of mass-weighted
    eigenvectors (Hungarian algorithm); needs both geometries in the same orientation.
    """
    m_ref, m_other = len(reference.frequencies), len(other.frequencies)
    if m_ref != m_other:
        raise ValueError(f"different numbers of modes: {m_ref} and {m_other} "
                         f"(same molecule and projection needed)")
    if by == "order":
        return np.argsort(other.frequencies)[np.argsort(np.argsort(reference.frequencies))]
    if by == "overlap":
        from scipy.optimize import linear_sum_assignment  # lazy: slow (~0.7 s); `import mlpot.spectra` stays numpy + ASE
        a = reference.mass_weighted.reshape(m_ref, -1)
        b = other.mass_weighted.reshape(m_other, -1)
        cost = -(a @ b.T) ** 2
        rows, cols = linear_sum_assignment(cost)
        return cols[np.argsort(rows)]
    raise ValueError(f"unknown matching {by!r}; use 'order' or 'overlap'")


def frequency_mae(reference: NormalModes, other: NormalModes, by: str = "order") -> float:
    """Mean absolute difference (cm⁻¹) of paired harmonic frequencies."""
    pairs = match_modes(reference, other, by)
    return float(np.mean(np.abs(other.frequencies[pairs] - reference.frequencies)))
