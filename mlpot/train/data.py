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
from mlpot.data.importers import check_limit, geometry_problem, import_data, list_bad
from mlpot.data.raw import DataError
from mlpot.data.splits import SplitError, check_split, load_split, random_split
from mlpot.data.store import read_store, store_metadata, store_size


def is_store(path: Path) -> bool:
    """True for an ASE db that mlpot wrote (metadata has "mlpot_store")."""
    if path.suffix.lower() != ".db":
        return False
    try:
        return "mlpot_store" in store_metadata(path)
    except Exception:
        return False


def read_structures(path: str | Path, format: str | None = None, energy_unit: str | None = None,
                    force_unit: str | None = None, length_unit: str | None = None, log=None,
                    limit: int | None = None) -> list:
    """The structures of a data file (all, or the first `limit`) as ase.Atoms with labels
    in eV/Å (atoms.calc.results). DataError for a store with a structure whose geometry cannot
    be used (importers.geometry_problem); an imported file leaves such rows out (reported)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} not found (check data.train / data.val / data.test)")
    check_limit(limit)
    if is_store(path) and not any((format, energy_unit, force_unit, length_unit)):
        structures = read_store(path, None if limit is None else range(min(limit, store_size(path))))
        bad = [(k, why) for k, atoms in enumerate(structures) if (why := geometry_problem(atoms))]
        if bad:
            raise DataError(f"{path}: {len(bad)} structure(s) cannot be used: {list_bad(bad)}; "
                            f"import it again without them: mlpot import {path} -o NEW.db")
        return structures
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
    wins over data.split and over a new seeded random split. SplitError when a split does not
    fit the data or leaves the training or validation set empty."""
    opts = dict(format=data_cfg.format, energy_unit=data_cfg.energy_unit,
                force_unit=data_cfg.force_unit, length_unit=data_cfg.length_unit)
    structures = read_structures(data_cfg.train, log=log, **opts)
    n_total = len(structures)
    n_val = 0 if data_cfg.val else data_cfg.n_val
    if split is not None:
        check_split(split, n_total, "the split of the run being resumed",
                    "resume with the data the run was started with (its config.yaml says which), "
                    "or --force to start a new run")
    elif data_cfg.split is not None:
        split = load_split(data_cfg.split, n_total, "point data.split at a split of this data "
                                                    "(data.train), or remove data.split for a new split")
    else:
        try:
            split = random_split(n_total, data_cfg.n_train, n_val, data_cfg.n_test, data_cfg.seed)
        except SplitError as exc:
            raise SplitError(f"data: {exc} ({data_cfg.train}); lower data.n_train or data.n_val so "
                             f"that they fit (n_train 1.0 is all of the data and leaves none for "
                             f"validation), or give a validation file as data.val") from None
    split = {k: np.asarray(v) for k, v in split.items()}
    train = AtomsDataset(structures, cutoff, indices=split["train"])
    if data_cfg.val:
        val = AtomsDataset(read_structures(data_cfg.val, log=log, **opts), cutoff)
    else:
        val = AtomsDataset(structures, cutoff, indices=split["val"])
    if len(train) == 0 or len(val) == 0:
        made = f"data.split {data_cfg.split}" if data_cfg.split else \
            f"data.n_train={data_cfg.n_train!r}, data.n_val={n_val!r}"
        val_from = f"data.val {data_cfg.val}" if data_cfg.val else "validation"
        todo = ("raise data.n_train (a count >= 1 or a larger fraction)" if len(train) == 0 else
                "set data.n_val to at least 1 structure (a count, or a larger fraction), give a "
                "validation file as data.val")
        raise SplitError(f"the {'training' if len(train) == 0 else 'validation'} set is empty: "
                         f"{data_cfg.train} has {n_total} structures, {len(train)} for training and "
                         f"{len(val)} for {val_from} ({made}); {todo}, or use more data")
    return TrainingData(train, val, split, species_of(train.structures, val.structures))
