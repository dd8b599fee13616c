"""A dataset of structures with cached neighbour-list graphs, and a batch iterator.

    ds = AtomsDataset("store.db", cutoff=5.0, indices=split["train"])
    for batch in batches(ds, batch_size=32, shuffle=True, seed=epoch):
        batch[keys.POSITIONS]   # [N, 3] Å, dtype
        batch[keys.ENERGY]      # [B] eV
        batch[keys.FORCES]      # [N, 3] eV/Å

`ds[i]` is the numpy dict of ``mlpot.data.batch.atoms_to_graph`` for one structure
(atomic_numbers [n], positions [n, 3] Å, cell [1, 3, 3] Å, pbc [1, 3], edge_index
[2, e], edge_shifts [e, 3], total_charge [1] e, and the labels energy [1] eV,
forces [n, 3] eV/Å, stress [1, 3, 3] eV/Å³, dipole [1, 3] e·Å where present).
Graphs are built once (the neighbour list is the expensive part) and kept in memory.

It also works as a ``torch.utils.data.Dataset``:
``DataLoader(ds, batch_size=32, collate_fn=functools.partial(collate, dtype=torch.float64))``.
"""
from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np
import torch

from mlpot.data.batch import atoms_to_graph, collate
from mlpot.data.store import read_store


class AtomsDataset(torch.utils.data.Dataset):
    """Structures from a store (path to an ASE db) or a list of ase.Atoms.

    Args:
        source: path of an mlpot store (ASE SQLite db) or a sequence of ase.Atoms.
        cutoff: neighbour-list cutoff in Å.
        indices: optional positions (into the store / list) that make up this dataset,
            e.g. one part of a split; item k of the dataset is structure indices[k].
    """

    def __init__(self, source, cutoff: float, indices: Sequence[int] | None = None):
        self.cutoff = float(cutoff)
        if isinstance(source, (str, os.PathLike)):
            self.path = str(source)
            structures = read_store(source)
        else:
            self.path = None
            structures = list(source)
        if indices is not None:
            idx = np.asarray(indices, dtype=np.int64).ravel()
            if len(idx) and (idx.min() < 0 or idx.max() >= len(structures)):
                raise IndexError(f"indices out of range for {len(structures)} structures")
            structures = [structures[i] for i in idx]
        self.structures = structures
        self._graphs: list[dict | None] = [None] * len(structures)

    def __len__(self) -> int:
        return len(self.structures)

    def atoms(self, i: int):
        """The ase.Atoms of item i (labels in atoms.calc.results)."""
        return self.structures[i]

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        g = self._graphs[i]
        if g is None:
            g = atoms_to_graph(self.structures[i], self.cutoff)
            self._graphs[i] = g
        return g

    def n_atoms(self) -> np.ndarray:
        """[len] atoms per structure (int64)."""
        return np.array([len(a) for a in self.structures], dtype=np.int64)


def batches(dataset, batch_size: int, shuffle: bool = False, seed: int = 0,
            dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
            drop_last: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Yield batch dictionaries (keys in mlpot.keys) of `batch_size` structures.

    With shuffle=True the order is a permutation drawn from numpy's default_rng(seed):
    pass a different seed each epoch (e.g. ``seed=base_seed + epoch``) for a new order
    that is still reproducible. The last, smaller batch is kept unless drop_last.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(dataset)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        chunk = order[start:start + batch_size]
        if drop_last and len(chunk) < batch_size:
            break
        yield collate([dataset[int(i)] for i in chunk], dtype=dtype, device=device)
