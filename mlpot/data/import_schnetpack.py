"""Reader for ASE SQLite databases: SchNetPack 2, older SchNetPack, ISO17, plain ASE db.

Layouts, told apart by the metadata and the first row:
  schnetpack2     metadata "_property_unit_dict" {name: unit} and "_distance_unit";
                  properties as numpy arrays in row.data (energy shape [1]).
  schnetpack-old  no unit metadata; row.data[name] is a base64 string of the raw bytes,
                  with row.data["_shape_" + name] and row.data["_dtype_" + name]
                  (e.g. QM9 from SchNetPack <= 0.3). Old SchNetPack stored ASE units
                  (eV, Å, e·Å), which is what is assumed unless told otherwise.
  ase-db          labels in the stored calculator results, key_value_pairs (e.g. ISO17's
                  "total_energy") or row.data (ISO17's "atomic_forces").
  mlpot-store     an ase-db that mlpot wrote: its units are in metadata["units"].
energy_key / forces_key name the property to use (row data, key_value_pairs or calculator
results); it wins over the names below and must be in the first row. Otherwise, tried:
  energy: energy, energy_U0, U0, total_energy, E;  forces: forces, force, atomic_forces, F;
  dipole: dipole, dipole_moment (only 3-vectors; QM9's scalar |mu| is not a dipole vector);
  stress: stress;  total charge: total_charge, charge.
"""
from __future__ import annotations

import base64
from typing import Iterator

import numpy as np

from mlpot.data.raw import DataError, RawFrame, check_keys

ENERGY_NAMES = ("energy", "energy_U0", "U0", "total_energy", "E")
FORCE_NAMES = ("forces", "force", "atomic_forces", "F")
DIPOLE_NAMES = ("dipole", "dipole_moment")
STRESS_NAMES = ("stress",)
CHARGE_NAMES = ("total_charge", "charge")


def decode_data(data: dict) -> dict:
    """row.data with old-SchNetPack base64 arrays decoded to numpy arrays."""
    out = {}
    for key, value in data.items():
        if key.startswith("_shape_") or key.startswith("_dtype_"):
            continue
        if isinstance(value, (str, bytes)) and f"_shape_{key}" in data:
            raw = base64.b64decode(value)
            dtype = np.dtype(data.get(f"_dtype_{key}", "float64"))
            value = np.frombuffer(raw, dtype=dtype).reshape(data[f"_shape_{key}"])
        out[key] = value
    return out


def _pick(names, *mappings, override=None):
    """(name, value) of the first property found; override restricts the search to one name."""
    for name in ((override,) if override else names):
        for mapping in mappings:
            if name in mapping and mapping[name] is not None:
                return name, mapping[name]
    return None, None


def _results(atoms) -> dict:
    """The calculator results stored with a row (energy, forces, ...)."""
    return dict(atoms.calc.results) if atoms.calc is not None else {}


def _unit(pud: dict, name, quantity: str):
    if name is None or name not in pud:
        return None
    unit = pud[name]
    if isinstance(unit, str) and unit.strip().lower() not in ("", "none"):
        return unit
    return None


def read_db(path, limit: int | None = None, energy_key: str | None = None,
            forces_key: str | None = None) -> tuple[dict, Iterator[RawFrame], str, list]:
    """(declared units, frames, layout name, notes) of an ASE SQLite database."""
    import ase.db  # lazy: ase.db loads ase.io and scipy (~0.8 s); mlpot.data imports this module

    try:
        db = ase.db.connect(str(path), type="db")
        meta = db.metadata or {}
        first = next(iter(db.select(limit=1)), None)
    except Exception as exc:
        raise DataError(f"{path}: cannot read as an ASE SQLite database "
                        f"({type(exc).__name__}: {exc})") from exc
    if first is None:
        raise DataError(f"{path}: the database has no rows; nothing to import")
    pud = meta.get("_property_unit_dict")
    if isinstance(pud, dict):
        layout = "schnetpack2"
    elif any(k.startswith("_shape_") for k in first.data):
        layout, pud = "schnetpack-old", {}
    else:
        layout, pud = ("mlpot-store" if "mlpot_store" in meta else "ase-db"), {}
    notes = []

    data0 = decode_data(first.data)
    kvp0 = first.key_value_pairs
    check_keys(path, {*data0, *kvp0, *_results(first.toatoms())}, energy_key=energy_key,
               forces_key=forces_key)
    e_name, _ = _pick(ENERGY_NAMES, data0, kvp0, override=energy_key)
    f_name, _ = _pick(FORCE_NAMES, data0, override=forces_key)
    d_name, d_val = _pick(DIPOLE_NAMES, data0)
    if d_name is not None and np.size(d_val) != 3:
        notes.append(f"property {d_name!r} has {np.size(d_val)} value(s) per row, not a "
                     f"dipole vector: not imported")
        d_name = None
    s_name, _ = _pick(STRESS_NAMES, data0)

    declared = {}
    if layout == "schnetpack2":
        for quantity, name in (("energy", e_name), ("forces", f_name), ("dipole", d_name),
                               ("stress", s_name)):
            unit = _unit(pud, name, quantity)
            if unit is not None:
                declared[quantity] = unit
        if isinstance(meta.get("_distance_unit"), str):
            declared["length"] = meta["_distance_unit"]
    elif layout == "mlpot-store" and isinstance(meta.get("units"), dict):
        declared = {k: v for k, v in meta["units"].items()
                    if k in ("energy", "length", "forces", "stress", "dipole")}
    other = sorted(set(data0) - {e_name, f_name, d_name, s_name, *CHARGE_NAMES})
    if other:
        notes.append(f"properties not imported: {', '.join(other)}")

    def frames():
        for k, row in enumerate(db.select(limit=limit)):
            atoms = row.toatoms()
            data = decode_data(row.data)
            results = _results(atoms)
            kvp = row.key_value_pairs
            labels = {}
            for label, name, named, extra in (("energy", e_name, energy_key, kvp),
                                              ("forces", f_name, forces_key, {}),
                                              ("dipole", d_name, None, {}), ("stress", s_name, None, {})):
                if named:
                    value = _pick((), data, kvp, results, override=named)[1]
                elif label in results and (layout in ("ase-db", "mlpot-store") or name is None):
                    value = results[label]
                else:
                    value = None if name is None else data.get(name, extra.get(name))
                if value is not None:
                    labels[label] = value
            _, charge = _pick(CHARGE_NAMES, data, kvp)
            if charge is not None:
                labels["total_charge"] = np.asarray(charge, dtype=float).reshape(-1)[0]
            yield RawFrame(k, atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc,
                           labels)

    return declared, frames(), layout, notes
