"""The mlpot data store: an ASE SQLite database (``ase.db``, embedded, no server).

Every row holds one structure in mlpot's units (docs/conventions.md):

| label         | where in the row                           | shape      | unit    |
|---------------|--------------------------------------------|------------|---------|
| energy        | calculator results (SinglePointCalculator) | scalar     | eV      |
| forces        | calculator results                         | [N, 3]     | eV/Å    |
| stress        | calculator results (ASE Voigt 6-vector)    | [6]        | eV/Å³   |
| dipole        | calculator results                         | [3]        | e·Å     |
| total_charge  | key_value_pairs["total_charge"]            | scalar     | e       |

Positions and cell are in Å. The database metadata records the units and where
the data came from::

    {"mlpot_store": 1, "units": {...UNITS...}, "source": "...", "source_format": "...",
     "source_units": {"energy": "kcal/mol", ...}}

Write with :func:`write_store`, read with :func:`read_store` (ase.Atoms whose
``atoms.calc.results`` carry the labels, so ``mlpot.data.batch.labels_from_atoms``
works, and ``atoms.info["total_charge"]``).
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator

# ase.db is imported in the functions that use it: it loads ase.io and scipy (~0.8 s, ~470
# modules), which `import mlpot.data` (and so MLPotCalculator) does without.

STORE_VERSION = 1
UNITS = {"energy": "eV", "length": "Å", "forces": "eV/Å", "stress": "eV/Å^3",
         "dipole": "e*Å", "charge": "e"}
CALC_LABELS = ("energy", "forces", "stress", "dipole")


class StoreExistsError(FileExistsError):
    """The output database exists and overwriting was not asked for."""


def check_writable(path: str | os.PathLike, force: bool = False) -> Path:
    """Raise StoreExistsError if `path` exists and `force` is False."""
    path = Path(path)
    if path.exists() and not force:
        raise StoreExistsError(f"{path} already exists; choose another output path or pass "
                               f"--force (force=True) to overwrite it")
    return path


def _row_args(atoms):
    """Split an Atoms into (atoms with SinglePointCalculator, key_value_pairs)."""
    results = dict(getattr(atoms.calc, "results", {}) or {}) if atoms.calc is not None else {}
    results = {k: v for k, v in results.items() if k in CALC_LABELS}
    out = atoms.copy()
    out.calc = SinglePointCalculator(out, **results) if results else None
    kvp = {}
    charge = atoms.info.get("total_charge")
    if charge is not None:
        kvp["total_charge"] = float(charge)
    return out, kvp


def write_store(path: str | os.PathLike, structures: Iterable, *, force: bool = False,
                source: str | None = None, source_format: str | None = None,
                source_units: dict | None = None, extra_metadata: dict | None = None) -> int:
    """Write `structures` (ase.Atoms with labels in a calculator, in eV/Å) to a new store.

    The database is written to a temporary file and renamed at the end, so a failure
    never leaves a half-written store and never destroys an existing one.
    Returns the number of rows written.
    """
    import ase.db  # lazy: slow, see the note at the top

    path = check_writable(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    n = 0
    try:
        db = ase.db.connect(str(tmp), type="db", append=False)
        with db:
            for atoms in structures:
                row_atoms, kvp = _row_args(atoms)
                db.write(row_atoms, key_value_pairs=kvp)
                n += 1
        meta = {"mlpot_store": STORE_VERSION, "units": dict(UNITS)}
        if source is not None:
            meta["source"] = str(source)
        if source_format is not None:
            meta["source_format"] = source_format
        if source_units is not None:
            meta["source_units"] = dict(source_units)
        meta.update(extra_metadata or {})
        db.metadata = meta
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n


def append_store(path: str | os.PathLike, structures: Iterable, key_value_pairs: Iterable[dict] | None = None,
                 metadata: dict | None = None) -> int:
    """Add labelled structures to a store (created with `metadata` if it does not exist), one
    SQLite transaction per structure, so an interruption keeps every row written before it.
    key_value_pairs: one dict per structure (ASE db keys, e.g. {"learn_id": "3-600-120"}).
    Returns the number of rows added."""
    import ase.db  # lazy: slow, see the note at the top

    path = Path(path)
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    db = ase.db.connect(str(path), type="db")
    if new:
        db.metadata = {"mlpot_store": STORE_VERSION, "units": dict(UNITS), **(metadata or {})}
    extra = iter(key_value_pairs) if key_value_pairs is not None else None
    n = 0
    for atoms in structures:
        row_atoms, kvp = _row_args(atoms)
        if extra is not None:
            kvp.update(next(extra))
        db.write(row_atoms, key_value_pairs=kvp)
        n += 1
    return n


def store_key_values(path: str | os.PathLike, key: str) -> list:
    """The values of key_value_pairs[key] over the rows of a store that have it."""
    import ase.db  # lazy: slow, see the note at the top

    if not Path(path).is_file():
        return []
    return [row.key_value_pairs[key] for row in ase.db.connect(str(path)).select(key)]


def store_metadata(path: str | os.PathLike) -> dict:
    """The metadata dictionary of a store (units, source, source_units)."""
    import ase.db  # lazy: slow, see the note at the top

    return dict(ase.db.connect(str(_existing(path))).metadata)


def _existing(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data store {path} not found; create one with "
                                f"`mlpot import SRC -o {path}`")
    return path


def row_to_atoms(row):
    """One ase.db row -> ase.Atoms with labels in atoms.calc.results and info['total_charge']."""
    atoms = row.toatoms()  # attaches a SinglePointCalculator with the stored results
    atoms.info["total_charge"] = float(row.key_value_pairs.get("total_charge", 0.0))
    return atoms


def store_ids(path: str | os.PathLike) -> list[int]:
    """Row ids of a store in insertion order (index i of a dataset is ids[i])."""
    con = sqlite3.connect(f"file:{_existing(path)}?mode=ro", uri=True)
    try:
        return [r[0] for r in con.execute("SELECT id FROM systems ORDER BY id")]
    finally:
        con.close()


def read_store(path: str | os.PathLike, indices: Sequence[int] | None = None) -> list:
    """Structures of a store as a list of ase.Atoms (all, or those at positions `indices`).

    Labels are in ``atoms.calc.results`` (eV, eV/Å, eV/Å³ Voigt, e·Å) and the total
    charge in ``atoms.info["total_charge"]`` (e).
    """
    import ase.db  # lazy: slow, see the note at the top

    path = _existing(path)
    db = ase.db.connect(str(path))
    if indices is None:
        return [row_to_atoms(r) for r in db.select()]
    ids = store_ids(path)
    return [row_to_atoms(db.get(id=ids[int(i)])) for i in np.asarray(indices).ravel()]


def store_size(path: str | os.PathLike) -> int:
    """Number of structures in a store."""
    import ase.db  # lazy: slow, see the note at the top

    return ase.db.connect(str(_existing(path))).count()
