"""A neighbour list kept between MD steps: built with cutoff + skin, reused while no atom has
moved more than skin/2 (then no pair can have crossed from outside cutoff + skin to inside
cutoff), rebuilt when an atom moved further or the cell, pbc or atomic numbers changed.

Edges are filtered to the cutoff on every call, so the model never sees a pair at d ≥ cutoff,
whatever its representation (`edges`: both directions of every pair; `pairs`: each unordered
pair once, for models that send its messages both ways, e.g. a `.pt2` file); a pair closer than mlpot.data.neighbors.MIN_DISTANCE (overlapping
atoms, where no model has data) raises OverlapError instead of giving a number.
"""
from __future__ import annotations

import numpy as np
import torch

from mlpot.data.neighbors import MIN_DISTANCE, neighbor_list_arrays, overlap_message
from mlpot.deploy.step_arrays import same_array, to_tensor
from mlpot.model.representations.schnet import half_of_symmetric_list


class OverlapError(ValueError):
    """Two atoms closer than mlpot.data.neighbors.MIN_DISTANCE."""


class SkinNeighborList:
    """Edges (i, j) and shift vectors S·cell as tensors on `device` in `dtype`.

    cutoff, skin: Å. `n_builds` counts neighbour-list builds (for tests and tuning).
    """

    def __init__(self, cutoff: float, skin: float, dtype: torch.dtype, device: torch.device | str):
        if not skin >= 0:
            raise ValueError(f"skin must be ≥ 0 Å, got {skin!r}")
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.dtype = dtype
        self.device = torch.device(device)
        self.n_builds = 0
        self._reference_positions: np.ndarray | None = None
        self._numbers = self._cell = self._pbc = None
        self._edge_index = self._shift_vectors = None
        self._i = self._j = self._shift_vectors_np = None
        self._pairs = None      # (pair_index tensor, i, j, shift vectors) of one edge per unordered pair

    def needs_rebuild(self, positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray,
                      pbc: np.ndarray) -> bool:
        """True unless the list was built for these numbers, cell, pbc and no atom has moved
        more than skin/2 since (positions as given, i.e. unwrapped)."""
        if self._reference_positions is None or positions.shape != self._reference_positions.shape:
            return True
        if not (same_array(numbers, self._numbers) and same_array(cell, self._cell) and same_array(pbc, self._pbc)):
            return True
        moved = positions - self._reference_positions
        return bool(moved.size and np.einsum("ij,ij->i", moved, moved).max() > (0.5 * self.skin) ** 2)

    def build(self, positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> None:
        i, j, shifts = neighbor_list_arrays(positions, cell, pbc, self.cutoff + self.skin)
        self._i, self._j = i, j
        self._edge_index = torch.from_numpy(np.stack([i, j])).to(self.device)
        shift_vectors = shifts.astype(float) @ cell
        self._shift_vectors_np = shift_vectors
        self._shift_vectors = to_tensor(shift_vectors, self.dtype, self.device)
        self._pairs = None
        self._reference_positions = positions.copy()
        self._numbers, self._cell, self._pbc = numbers.copy(), cell.copy(), pbc.copy()
        self.n_builds += 1

    def pairs(self, positions: np.ndarray, numbers: np.ndarray, cell: np.ndarray,
              pbc: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(pair_index [2, P] int64, pair_vectors [P, 3] r_j − r_i + S·cell Å) with one edge of each
        unordered pair closer than the cutoff, rebuilding the list if needed; positions [N, 3] Å."""
        if self.needs_rebuild(positions, numbers, cell, pbc):
            self.build(positions, numbers, cell, pbc)
        if self._pairs is None:
            self._pairs = self._halve()
        index, i, j, shift_vectors = self._pairs
        vectors = positions.take(j, axis=0) - positions.take(i, axis=0)   # take: half of [j]'s cost
        vectors += shift_vectors
        inside = self._within_cutoff(vectors, i, j)
        if inside is not None:
            kept = torch.from_numpy(np.flatnonzero(inside)).to(self.device)
            index, vectors = index.index_select(1, kept), vectors[inside]
        return index, to_tensor(vectors, self.dtype, self.device)

    def _halve(self) -> tuple:
        """One edge of each pair of the full list, by the pair rule of the written-out engine
        (mlpot.model.representations.schnet.half_of_symmetric_list: i < j, or for an atom and its
        own image, i = j, the shift vector lexicographically positive)."""
        i, j = torch.from_numpy(self._i), torch.from_numpy(self._j)
        # an edge's vector differs from its shift vector by r_j − r_i, which is 0 where i = j: the
        # rule's tie-break sees the same sign
        n_atoms = max(len(self._reference_positions), 1)
        keep = half_of_symmetric_list(i, j, torch.from_numpy(self._shift_vectors_np), n_atoms)
        if keep is None:
            raise ValueError("the neighbour list is not symmetric (every i→j with its j→i); report this")
        keep = keep.numpy()
        i, j = self._i[keep], self._j[keep]
        return (torch.from_numpy(np.stack([i, j])).to(self.device), i, j, self._shift_vectors_np[keep])

    def _within_cutoff(self, vectors: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray | None:
        """Which edges (vectors [E, 3] Å) are inside the cutoff, None for all; OverlapError for a
        pair closer than MIN_DISTANCE."""
        if len(vectors) == 0:
            return None
        squared = np.einsum("ij,ij->i", vectors, vectors)
        if squared.min() < MIN_DISTANCE ** 2:
            closest = int(np.argmin(squared))
            pair = (int(i[closest]), int(j[closest]), float(np.sqrt(squared[closest])))
            raise OverlapError(overlap_message(pair))
        if self.skin > 0 and squared.max() >= self.cutoff ** 2:
            return squared < self.cutoff ** 2
        return None

    def edges(self, positions: np.ndarray, positions_t: torch.Tensor, numbers: np.ndarray,
              cell: np.ndarray, pbc: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(edge_index [2, E] int64, shift_vectors [E, 3]) of the pairs closer than the cutoff,
        rebuilding the list if needed. positions [N, 3] Å (numpy), positions_t the same as a tensor."""
        if self.needs_rebuild(positions, numbers, cell, pbc):
            self.build(positions, numbers, cell, pbc)
        edge_index, shift_vectors = self._edge_index, self._shift_vectors
        if edge_index.shape[1] == 0:
            return edge_index, shift_vectors
        # in numpy on the float64 positions: fewer, cheaper operations than torch here
        vectors = positions.take(self._j, axis=0) - positions.take(self._i, axis=0)
        vectors += self._shift_vectors_np
        inside = self._within_cutoff(vectors, self._i, self._j)
        if inside is not None:
            kept = torch.from_numpy(np.flatnonzero(inside)).to(self.device)
            edge_index, shift_vectors = edge_index.index_select(1, kept), shift_vectors.index_select(0, kept)
        return edge_index, shift_vectors
