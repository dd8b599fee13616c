"""Neighbour lists with periodic images, built on matscipy.

`neighbor_list(atoms, cutoff)` returns the full list (both directions) of pairs
closer than `cutoff`: arrays i, j and the integer image shift S of j, so that the
edge vector is r_ij = r_j - r_i + S · cell (cell vectors as rows). It gives the
same pairs as `ase.neighborlist.primitive_neighbor_list` for isolated molecules,
triclinic and strongly skewed cells, cells shorter than the cutoff (self-images
i == j with S != 0), mixed periodicity and unwrapped positions.
"""
from __future__ import annotations

import numpy as np
from matscipy.neighbours import neighbour_list as _matscipy_list

# A periodic cell vector shorter than this (Å), or a cell of volume below
# MIN_VOLUME, is rejected as degenerate.
MIN_LENGTH = 1e-6
MIN_VOLUME = 1e-9
# Two atoms closer than this (Å) overlap: no chemistry has such a pair (H2's bond is 0.74 Å), and
# no model has data there. Inputs with such a pair are refused (overlapping_pair).
MIN_DISTANCE = 0.2


def _check_inputs(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float) -> None:
    if not np.isfinite(cutoff) or cutoff <= 0:
        raise ValueError(f"cutoff must be a positive number of Å, got {cutoff!r}")
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape [N, 3], got {positions.shape}")
    if not np.all(np.isfinite(positions)):
        bad = np.unique(np.nonzero(~np.isfinite(positions))[0])
        raise ValueError(f"positions contain NaN or inf (atoms {bad[:10].tolist()}); "
                         "check the structure before building a neighbour list")
    if pbc.any():
        if not np.all(np.isfinite(cell)):
            raise ValueError("cell contains NaN or inf")
        lengths = np.linalg.norm(cell, axis=1)
        for d in np.nonzero(pbc)[0]:
            if lengths[d] < MIN_LENGTH:
                raise ValueError(f"direction {d} is periodic but cell vector {d} is zero; "
                                 "set a cell (atoms.cell = ...) or make it non-periodic (pbc)")
        periodic = cell[pbc]
        gram = periodic @ periodic.T
        # volume (area, length) spanned by the periodic vectors
        if np.sqrt(max(np.linalg.det(gram), 0.0)) < MIN_VOLUME * max(lengths[pbc].max(), 1.0):
            raise ValueError(f"the periodic cell vectors are linearly dependent: cell = {cell.tolist()}, "
                             f"pbc = {pbc.tolist()}; use a cell with independent vectors")


def _complete_cell(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float):
    """A full-rank cell equal to `cell` in periodic directions; non-periodic vectors
    replaced by vectors orthogonal to the periodic ones, long enough to hold every atom.

    Returns (cell_for_search, origin): positions - origin lie inside the box in the
    non-periodic directions.
    """
    box = np.array(cell, dtype=float)
    periodic = [d for d in range(3) if pbc[d]]
    open_dirs = [d for d in range(3) if not pbc[d]]
    # orthonormal basis of the complement of the periodic vectors
    if periodic:
        q, _ = np.linalg.qr(box[periodic].T, mode="complete")
        complement = q[:, len(periodic):].T
    else:
        complement = np.eye(3)
    origin = np.zeros(3)
    for d, direction in zip(open_dirs, complement):
        proj = positions @ direction if len(positions) else np.zeros(1)
        lo, hi = float(proj.min()), float(proj.max())
        box[d] = direction * (hi - lo + cutoff + 1.0)
        origin += direction * (lo - 0.5)
    return box, origin


def neighbor_list(atoms, cutoff: float, self_interaction: bool = False):
    """Full neighbour list of `atoms` (ase.Atoms) within `cutoff` Å.

    Returns (i, j, S): int64 arrays [E], [E], [E, 3] with r_ij = r_j - r_i + S·cell.
    Pairs are sorted by i, then j. Atoms need not be wrapped into the cell.
    """
    return neighbor_list_arrays(atoms.positions, atoms.cell.array, atoms.pbc, cutoff, self_interaction)


def neighbor_list_arrays(positions, cell, pbc, cutoff: float, self_interaction: bool = False):
    """`neighbor_list` on plain arrays: positions [N, 3] Å, cell [3, 3] rows, pbc [3] bool."""
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    cell = np.asarray(cell, dtype=float).reshape(3, 3)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy()
    cutoff = float(cutoff)
    _check_inputs(positions, cell, pbc, cutoff)
    n = len(positions)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.int64))
    if n == 0:
        return empty

    box, origin = _complete_cell(positions, cell, pbc, cutoff)
    # wrap periodic directions ourselves: pos = wrapped + k·box, so the shifts
    # found for wrapped positions are corrected by k_i - k_j afterwards
    frac = np.linalg.solve(box.T, (positions - origin).T).T
    k = np.where(pbc, np.floor(frac), 0.0)
    frac -= k
    # rounding can leave a coordinate at exactly 1.0 (e.g. -1e-300 - floor): move it to 0
    at_one = pbc & (frac >= 1.0)
    frac[at_one] -= 1.0
    k[at_one] += 1.0
    wrapped = frac @ box

    i, j, S = _matscipy_list("ijS", positions=wrapped, cell=box, pbc=pbc, cutoff=cutoff)
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    S = S.astype(np.int64) + (k[i] - k[j]).astype(np.int64)
    if self_interaction:
        i = np.concatenate([i, np.arange(n)])
        j = np.concatenate([j, np.arange(n)])
        S = np.concatenate([S, np.zeros((n, 3), np.int64)])
    order = np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))
    return i[order], j[order], S[order]


def edge_vectors(positions, cell, i, j, S) -> np.ndarray:
    """r_ij = r_j - r_i + S·cell, [E, 3] Å."""
    return positions[j] - positions[i] + S @ np.asarray(cell)


def overlapping_pair(positions, cell, pbc, min_distance: float = MIN_DISTANCE):
    """The closest pair of atoms (periodic images included) closer than `min_distance` Å, as
    (i, j, distance in Å), or None. Raises ValueError for a degenerate cell or NaN positions."""
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    i, j, S = neighbor_list_arrays(positions, cell, pbc, min_distance)
    if len(i) == 0:
        return None
    d = np.linalg.norm(edge_vectors(positions, np.asarray(cell, dtype=float).reshape(3, 3), i, j, S), axis=1)
    k = int(np.argmin(d))
    return int(i[k]), int(j[k]), float(d[k])


def overlap_message(pair: tuple, what: str = "the structure") -> str:
    """One line about an overlapping pair from overlapping_pair."""
    i, j, d = pair
    who = f"atom {i} and a periodic image of itself" if i == j else f"atoms {i} and {j}"
    return (f"{what} has {who} {d:.3g} Å apart (closer than {MIN_DISTANCE} Å: overlapping atoms); "
            f"check the positions and their unit (Å), or remove the duplicate atom")
