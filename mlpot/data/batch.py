"""Turn ase.Atoms into the batch dictionary of tensors (keys in mlpot.keys).

Two steps so that data loaders can cache the expensive part:
  atoms_to_graph(atoms, cutoff) -> dict of numpy arrays for one structure
  collate(graphs, dtype, device) -> batch dict of tensors for many
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from mlpot import keys as K
from mlpot.data.neighbors import neighbor_list

FLOAT_KEYS = (K.POSITIONS, K.CELL, K.EDGE_SHIFTS, K.TOTAL_CHARGE,
              K.ENERGY, K.FORCES, K.STRESS, K.DIPOLE)


def labels_from_atoms(atoms) -> dict[str, np.ndarray]:
    """Labels attached to `atoms` by a calculator (e.g. SinglePointCalculator), in eV/Å.

    Returns a subset of energy [1], forces [N, 3], stress [1, 3, 3], dipole [1, 3].
    """
    results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
    out: dict[str, np.ndarray] = {}
    if "energy" in results:
        out[K.ENERGY] = np.array([results["energy"]], dtype=float)
    if "forces" in results:
        out[K.FORCES] = np.asarray(results["forces"], dtype=float).reshape(-1, 3)
    if "stress" in results:
        s = np.asarray(results["stress"], dtype=float)
        if s.shape == (6,):
            xx, yy, zz, yz, xz, xy = s
            s = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
        out[K.STRESS] = s.reshape(1, 3, 3)
    if "dipole" in results:
        out[K.DIPOLE] = np.asarray(results["dipole"], dtype=float).reshape(1, 3)
    return out


def atoms_to_graph(atoms, cutoff: float, labels: bool = True) -> dict[str, np.ndarray]:
    """One structure as numpy arrays: inputs, its neighbour list and (optionally) its labels."""
    i, j, S = neighbor_list(atoms, cutoff)
    charge = atoms.info.get("total_charge", atoms.info.get("charge", 0.0))
    graph = {
        K.ATOMIC_NUMBERS: atoms.numbers.astype(np.int64),
        K.POSITIONS: atoms.positions.astype(float),
        K.CELL: atoms.cell.array.astype(float).reshape(1, 3, 3),
        K.PBC: atoms.pbc.astype(bool).reshape(1, 3),
        K.EDGE_INDEX: np.stack([i, j]).astype(np.int64),
        K.EDGE_SHIFTS: S.astype(float),
        K.TOTAL_CHARGE: np.array([float(charge)]),
    }
    if labels:
        graph.update(labels_from_atoms(atoms))
    return graph


def collate(graphs: Sequence[dict[str, np.ndarray]], dtype: torch.dtype = torch.float32,
            device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Concatenate structures into one batch; edge indices are offset per structure.

    A label is kept only if every structure has it (a batch is all-or-nothing per label).
    """
    if len(graphs) == 0:
        raise ValueError("cannot collate an empty list of structures")
    counts = np.array([len(g[K.ATOMIC_NUMBERS]) for g in graphs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    batch: dict[str, np.ndarray] = {
        K.N_ATOMS: counts,
        K.BATCH: np.repeat(np.arange(len(graphs), dtype=np.int64), counts),
        K.EDGE_INDEX: np.concatenate([g[K.EDGE_INDEX] + o for g, o in zip(graphs, offsets)], axis=1),
    }
    shared = set(graphs[0]).intersection(*graphs[1:]) - {K.EDGE_INDEX}
    for key in shared:
        batch[key] = np.concatenate([g[key] for g in graphs], axis=0)
    out = {}
    for key, value in batch.items():
        t = torch.from_numpy(np.ascontiguousarray(value))
        if key in FLOAT_KEYS:
            t = t.to(dtype)
        out[key] = t.to(device)
    return out


def atoms_to_batch(structures, cutoff: float, dtype: torch.dtype = torch.float32,
                   device: torch.device | str = "cpu", labels: bool = True) -> dict[str, torch.Tensor]:
    """A list of ase.Atoms (or one) -> batch dictionary on `dtype` and `device`."""
    if hasattr(structures, "positions"):
        structures = [structures]
    return collate([atoms_to_graph(a, cutoff, labels) for a in structures], dtype, device)
