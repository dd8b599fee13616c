"""Training data from a config: read the structures, split them, wrap them as datasets.

A data file is either an mlpot store (ASE SQLite db written by `mlpot import`) or any
file the importers read (rMD17 npz, extxyz, ASE/SchNetPack db); the latter is imported
into a temporary store on the fly (units converted, bad rows skipped and reported).
For large data sets import once with `mlpot import` and point data.train at the store.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlpot.data.dataset import AtomsDataset
from mlpot.data.splits import load_split, random_split


def is_store(path: Path) -> bool:
    """True for an ASE db that mlpot wrote (metadata has "mlpot_store")."""
    if path.suffix.lower() != ".db":
        return False
    from mlpot.data.store import store_metadata

    try:
        return "mlpot_store" in store_metadata(path)
    except Exception:
        return False


def read_structures(path: str | Path, format: str | None = None, energy_unit: str | None = None,
                    force_unit: str | None = None, length_unit: str | None = None, log=None,
                    limit: int | None = None) -> list:
    """The structures of a data file (all, or the first `limit`) as ase.Atoms with labels
    in eV/Å (atoms.calc.results)."""
    from mlpot.data.store import read_store

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} not found (check data.train / data.val / data.test)")
    if is_store(path) and not any((format, energy_unit, force_unit, length_unit)):
        from mlpot.data.store import store_size

        return read_store(path, None if limit is None else range(min(limit, store_size(path))))
    from mlpot.data.importers import import_data

    with tempfile.TemporaryDirectory(prefix="mlpot-import-") as tmp:
        store = Path(tmp) / "data.db"
        report = import_data(path, store, format=format, energy_unit=energy_unit,
                             force_unit=force_unit, length_unit=length_unit, limit=limit)
        if log is not None:
            log(report.summary())
        return read_store(store)


def species_of(*structure_lists) -> list[int]:
    """Sorted atomic numbers present in the structures."""
    found: set[int] = set()
    for structures in structure_lists:
        for atoms in structures:
            found.update(int(z) for z in np.unique(atoms.numbers))
    return sorted(found)


@dataclass
class TrainingData:
    train: AtomsDataset
    val: AtomsDataset
    split: dict            # train/val/test index arrays into data.train, n_total, seed
    species: list


def load_training_data(data_cfg, cutoff: float, split: dict | None = None, log=None) -> TrainingData:
    """Datasets for training and validation. `split` (e.g. from a checkpoint being resumed)
    wins over data.split and over a new seeded random split."""
    opts = dict(format=data_cfg.format, energy_unit=data_cfg.energy_unit,
                force_unit=data_cfg.force_unit, length_unit=data_cfg.length_unit)
    structures = read_structures(data_cfg.train, log=log, **opts)
    n_total = len(structures)
    if split is None and data_cfg.split is not None:
        split = load_split(data_cfg.split, n_total)
    if split is None:
        n_val = 0 if data_cfg.val else data_cfg.n_val
        split = random_split(n_total, data_cfg.n_train, n_val, data_cfg.n_test, data_cfg.seed)
    split = {k: np.asarray(v) for k, v in split.items()}
    if "n_total" in split and int(split["n_total"]) != n_total:
        raise ValueError(f"the split was made for {int(split['n_total'])} structures but {data_cfg.train} "
                         f"has {n_total}; use the data the run was started with, or start a new run")
    if len(split["train"]) == 0:
        raise ValueError("the training set is empty; raise data.n_train")
    train = AtomsDataset(structures, cutoff, indices=split["train"])
    if data_cfg.val:
        val_structures = read_structures(data_cfg.val, log=log, **opts)
        val = AtomsDataset(val_structures, cutoff)
    else:
        val = AtomsDataset(structures, cutoff, indices=split["val"])
    if len(val) == 0:
        raise ValueError("the validation set is empty; set data.n_val > 0 or data.val (validation "
                         "picks best.ckpt and drives early stopping)")
    return TrainingData(train, val, split, species_of(train.structures, val.structures))
