"""Import reference data into an mlpot store (ASE SQLite db in eV, Å, e·Å).

    report = import_data("rmd17_ethanol.npz", "ethanol.db")          # kcal/mol -> eV
    report = import_data("Si.xyz", "si.db", on_bad="refuse")
    print(report.summary())

Formats (``format=None`` guesses from the file):
  extxyz / any ase.io format   (``format="ase"``, or an ase.io format name such as "vasp-out")
  md17                         MD17/rMD17 npz (kcal/mol, kcal/mol/Å, Å)
  db                           ASE SQLite: SchNetPack 2, older SchNetPack (base64 arrays),
                               ISO17 or a plain ASE db (see import_schnetpack.py)
Units: a unit given by the caller wins (a note in the report says when it overrides the
unit the file records; an mlpot store, always in eV/Å, refuses other units); otherwise the
unit the file declares; otherwise the format's convention (recorded as "assumed" in the
report and the store metadata). If only the energy or length unit is given, the force unit
is ENERGY/LENGTH. A virial (extxyz ``virial``, energy unit) becomes the stress
-virial / volume.

Every row is checked: finite positions and labels, label shapes that match the atom
count, a periodic cell that is not degenerate, no overlapping atoms (closer than
mlpot.data.neighbors.MIN_DISTANCE), and the required labels present (``require``: default
"energy" plus every label the first good row has, so that all rows carry the same labels).
Bad rows are reported with their index and skipped (``on_bad="skip"``) or the whole import
is refused (``on_bad="refuse"``, nothing is written). An existing output is never
overwritten unless ``force=True``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot import units
from mlpot.data.import_ase import read_ase
from mlpot.data.import_npz import read_md17_npz
from mlpot.data.import_schnetpack import read_db
from mlpot.data.neighbors import overlap_message, overlapping_pair
from mlpot.data.raw import DataError, RawFrame
from mlpot.data.store import StoreExistsError, check_writable, write_store

QUANTITIES = ("energy", "length", "forces", "stress", "dipole")
OWN_FORMATS = ("ase", "extxyz", "md17", "db")
DEFAULTS = {
    "ase": {"energy": "eV", "length": "Å", "forces": "eV/Å", "stress": "eV/Å^3", "dipole": "e*Å"},
    "md17": {"energy": "kcal/mol", "length": "Å", "forces": "kcal/mol/Å"},
    "db": {"energy": "eV", "length": "Å", "forces": "eV/Å", "stress": "eV/Å^3", "dipole": "e*Å"},
}
FACTOR = {"energy": units.energy_factor, "length": units.length_factor,
          "forces": units.force_factor, "stress": units.stress_factor,
          "dipole": units.dipole_factor}
MAX_LISTED = 10


@dataclass
class ImportReport:
    """What an import did. `bad` lists (source index, reason) of every rejected row."""
    source: str
    output: str
    format: str
    n_read: int = 0
    n_written: int = 0
    bad: list = field(default_factory=list)
    source_units: dict = field(default_factory=dict)
    unit_origin: dict = field(default_factory=dict)   # quantity -> "given"|"file"|"assumed"|"derived"
    labels: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"imported {self.n_written} of {self.n_read} structures from {self.source} "
                 f"({self.format}) into {self.output}",
                 "labels: " + (", ".join(self.labels) or "none"),
                 "source units: " + ", ".join(f"{q} {u} ({self.unit_origin.get(q, '?')})"
                                              for q, u in self.source_units.items())]
        if self.bad:
            lines.append(f"skipped {len(self.bad)} bad row(s): " + list_bad(self.bad))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def list_bad(bad) -> str:
    """(index, reason) pairs as one line "#i: reason; ..." (the first MAX_LISTED)."""
    text = "; ".join(f"#{i}: {why}" for i, why in bad[:MAX_LISTED])
    return text + (f"; ... and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else "")


def detect_format(path: Path) -> str:
    """'md17', 'db', 'extxyz' or an ase.io format name; DataError if unknown."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "md17"
    if suffix == ".db":
        return "db"
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(b"SQLite format 3"):
        return "db"
    if head.startswith(b"PK"):
        return "md17"
    if suffix in (".xyz", ".extxyz"):
        return "extxyz"
    from ase.io.formats import filetype, ioformats  # lazy: ase.io loads scipy (~0.8 s), see store.py

    try:
        fmt = filetype(str(path), guess=True)
    except Exception:
        fmt = None
    if fmt not in ioformats or not ioformats[fmt].can_read:
        what = f"is a {fmt} file, which holds no structures mlpot can read" if fmt else \
            "is in no format mlpot knows"
        raise DataError(f"{path} {what}; give extxyz, an MD17 npz or an ASE/SchNetPack db, or pass "
                        f"--format (an ase.io format name such as vasp-out) if the guess is wrong")
    return fmt


def check_limit(limit) -> None:
    """DataError unless `limit` (a number of structures to read) is None or >= 1."""
    if limit is not None and limit < 1:
        raise DataError(f"--limit {limit}: give the number of structures to read (>= 1), or no limit "
                        f"for all of them")


def geometry_problem(atoms) -> str | None:
    """Why the geometry of `atoms` cannot be used (degenerate periodic cell, overlapping
    atoms), or None."""
    try:
        pair = overlapping_pair(atoms.positions, atoms.cell.array, atoms.pbc)
    except ValueError as exc:
        return str(exc)
    return None if pair is None else overlap_message(pair, "the structure")


def resolve_units(given: dict, declared: dict, defaults: dict) -> tuple[dict, dict]:
    """(unit of each quantity, where it came from); validates every unit name."""
    out, origin = {}, {}
    for q in QUANTITIES:
        if given.get(q):
            out[q], origin[q] = given[q], "given"
        elif declared.get(q):
            out[q], origin[q] = declared[q], "file"
        elif q in defaults:
            out[q], origin[q] = defaults[q], "assumed"
    for q, power in (("forces", ""), ("stress", "^3")):
        if not given.get(q) and (given.get("energy") or given.get("length")):
            out[q] = f"{out.get('energy', 'eV')}/{out.get('length', 'Å')}{power}"
            origin[q] = "derived"
    for q, unit in out.items():
        try:
            FACTOR[q](unit)
        except ValueError as exc:
            raise DataError(f"{exc} (for {q}; pass --{_option(q)}-unit to set it)") from None
    return out, origin


def _option(quantity: str) -> str:
    return "force" if quantity == "forces" else quantity


def _overridden(unit_of: dict, origin: dict, declared: dict) -> list[str]:
    """Lines about the units given (or derived from those given) that differ from the file's."""
    lines = []
    for q, unit in unit_of.items():
        if origin[q] in ("given", "derived") and declared.get(q) and \
                not math.isclose(FACTOR[q](unit), FACTOR[q](declared[q])):
            how = f"--{_option(q)}-unit {unit}" if origin[q] == "given" else f"{q} unit {unit} (derived)"
            lines.append(f"{how} overrides the file's {declared[q]}")
    return lines


def _check_frame(frame: RawFrame, factors: dict) -> tuple[object | None, str | None]:
    """Convert one frame to eV/Å and return (ase.Atoms, None) or (None, reason)."""
    if frame.problem:
        return None, frame.problem
    numbers = np.asarray(frame.numbers).astype(np.int64).ravel()
    n = len(numbers)
    if n == 0:
        return None, "no atoms"
    if numbers.min() < 1 or numbers.max() > 118:
        return None, f"atomic numbers out of range 1..118 ({numbers.min()}..{numbers.max()})"
    pos = np.asarray(frame.positions, dtype=float)
    if pos.shape != (n, 3):
        return None, f"positions have shape {pos.shape}, expected ({n}, 3)"
    if not np.all(np.isfinite(pos)):
        return None, "positions have NaN or inf values"
    cell = np.asarray(frame.cell, dtype=float).reshape(3, 3)
    if not np.all(np.isfinite(cell)):
        return None, "cell has NaN or inf values"
    atoms = Atoms(numbers=numbers, positions=pos * factors["length"],
                  cell=cell * factors["length"], pbc=np.asarray(frame.pbc, bool).reshape(3))
    why = geometry_problem(atoms)
    if why:
        return None, why
    results = {}
    shapes = {"forces": [(n, 3)], "dipole": [(3,), (1, 3)], "stress": [(6,), (3, 3), (9,), (1, 3, 3)]}
    shapes["virial"] = shapes["stress"]
    for label, value in frame.labels.items():
        if label == "total_charge":
            continue
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            return None, f"{label} is not numeric ({value!r})"
        if label == "energy":
            if arr.size != 1:
                return None, f"energy has {arr.size} values, expected one"
            arr = arr.reshape(())
        elif arr.shape not in shapes[label]:
            return None, f"{label} has shape {arr.shape}, expected {shapes[label][0]}"
        if not np.all(np.isfinite(arr)):
            return None, f"{label} has NaN or inf values"
        if label == "energy":
            results["energy"] = float(arr * factors["energy"])
        elif label == "stress":
            results["stress"] = _voigt(arr * factors["stress"])
        elif label == "virial":   # ASE's stress is -virial / volume
            if not atoms.pbc.all():
                return None, "virial without a cell periodic in all directions (no volume for the stress)"
            results.setdefault("stress", -_voigt(arr * factors["energy"]) / atoms.get_volume())
        else:
            arr = arr * factors[label]
            results[label] = arr.reshape(-1, 3) if label == "forces" else arr.reshape(3)
    charge = frame.labels.get("total_charge")
    if charge is not None:
        charge = float(np.asarray(charge, dtype=float).reshape(-1)[0])
        if not math.isfinite(charge):
            return None, "total_charge is NaN or inf"
        atoms.info["total_charge"] = charge
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms, None


def _voigt(s: np.ndarray) -> np.ndarray:
    if s.size == 6:
        return s.reshape(6)
    m = s.reshape(3, 3)
    return np.array([m[0, 0], m[1, 1], m[2, 2], m[1, 2], m[0, 2], m[0, 1]])


def _open_reader(path: Path, fmt: str, limit, energy_key, forces_key):
    """(format family, declared units, frames, notes, format label)."""
    if fmt == "md17":
        declared, frames = read_md17_npz(path, limit, energy_key, forces_key)
        return "md17", declared, frames, [], "md17"
    if fmt == "db":
        declared, frames, layout, notes = read_db(path, limit, energy_key, forces_key)
        return "db", declared, frames, notes, layout
    ase_format = None if fmt in ("ase",) else fmt
    declared, frames = read_ase(path, ase_format, limit, energy_key, forces_key)
    return "ase", declared, frames, [], fmt


def import_data(src, out_db, *, format: str | None = None, energy_unit: str | None = None,
                force_unit: str | None = None, length_unit: str | None = None,
                stress_unit: str | None = None, dipole_unit: str | None = None,
                on_bad: str = "skip", force: bool = False, limit: int | None = None,
                require: Sequence[str] | None = None, energy_key: str | None = None,
                forces_key: str | None = None) -> ImportReport:
    """Read `src`, convert to eV/Å/e·Å, check every row and write the store `out_db`.

    Args:
        src: input file (extxyz or any ase.io format, MD17/rMD17 npz, ASE/SchNetPack db).
        out_db: output store path (ASE SQLite); refused if it exists unless force=True.
        format: "extxyz", "md17", "db", "ase" or an ase.io format name; None guesses.
        energy_unit, force_unit, length_unit, stress_unit, dipole_unit: source units that
            override what the file declares (e.g. "kcal/mol", "Hartree/Bohr", "Bohr").
        on_bad: "skip" (report and leave out bad rows) or "refuse" (raise DataError, write
            nothing).
        limit: read at most this many structures (the first ones).
        require: labels every row must have; None = energy plus the labels of the first
            good row.
        energy_key, forces_key: the names of the energy and forces in the file (e.g.
            "energy_U0"); they win over the usual names; DataError if the file lacks them.

    Returns an ImportReport. Raises DataError (malformed input, refused rows, bad units),
    StoreExistsError (output exists) or FileNotFoundError.
    """
    if on_bad not in ("skip", "refuse"):
        raise ValueError(f"on_bad must be 'skip' or 'refuse', got {on_bad!r}")
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file")
    if src.stat().st_size == 0:
        raise DataError(f"{src} is empty (0 bytes); give a file with structures")
    check_limit(limit)
    check_writable(out_db, force)
    fmt = (format or detect_format(src)).lower()
    if fmt == "npz":
        fmt = "md17"
    family, declared, frames, notes, label = _open_reader(src, fmt, limit, energy_key, forces_key)
    given = {"energy": energy_unit, "forces": force_unit, "length": length_unit,
             "stress": stress_unit, "dipole": dipole_unit}
    unit_of, origin = resolve_units(given, declared, DEFAULTS[family])
    overridden = _overridden(unit_of, origin, declared)
    if overridden and label == "mlpot-store":
        raise DataError(f"{src} is an mlpot store, always in eV/Å, but {overridden[0]}; leave "
                        f"the unit out (--*-unit, or data.*_unit of a training config)")
    notes = list(notes) + overridden
    factors = {q: FACTOR[q](u) for q, u in unit_of.items()}
    for q in QUANTITIES:
        factors.setdefault(q, 1.0)

    report = ImportReport(str(src), str(out_db), label, notes=notes)
    required = None if require is None else set(require)
    good = []
    try:
        for frame in frames:
            report.n_read += 1
            atoms, why = _check_frame(frame, factors)
            if atoms is not None:
                have = set(atoms.calc.results) if atoms.calc is not None else set()
                if required is None:
                    if "energy" not in have:
                        why = "missing required label(s): energy"
                    else:
                        required = have | {"energy"}
                if why is None:
                    missing = sorted(required - have)
                    if missing:
                        why = f"missing required label(s): {', '.join(missing)}"
            if why is not None:
                report.bad.append((frame.index, why))
            else:
                good.append(atoms)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{src}: cannot read as {label} ({type(exc).__name__}: {exc}); "
                        f"check the file or pass --format") from exc
    if report.n_read == 0:
        raise DataError(f"{src}: no structures found when read as {label}; is it the right "
                        f"file? pass --format to say what it is")
    if report.bad and on_bad == "refuse":
        raise DataError(f"{src}: {len(report.bad)} of {report.n_read} rows are bad and "
                        f"--on-bad refuse was asked, nothing written: {list_bad(report.bad)}")
    if not good:
        raise DataError(f"{src}: all {report.n_read} rows are bad, nothing written: "
                        f"{list_bad(report.bad)}")
    common = set.intersection(*(set(a.calc.results) if a.calc is not None else set()
                                for a in good))
    report.labels = [lab for lab in ("energy", "forces", "stress", "dipole") if lab in common]
    relevant = {"energy", "length"} | set(report.labels)
    report.source_units = {q: u for q, u in unit_of.items() if q in relevant}
    report.unit_origin = {q: o for q, o in origin.items() if q in relevant}
    report.n_written = write_store(
        out_db, good, force=force, source=str(src.resolve()), source_format=label,
        source_units=report.source_units,
        extra_metadata={"source_unit_origin": report.unit_origin,
                        "skipped_rows": [int(i) for i, _ in report.bad]})
    return report


__all__ = ["DataError", "ImportReport", "StoreExistsError", "detect_format", "import_data"]
