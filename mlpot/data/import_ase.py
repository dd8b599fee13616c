"""Reader for everything ``ase.io`` reads (extxyz first of all, also a plain ASE db).

Labels are looked up in this order (first hit wins):
  energy  calculator results "energy", then info "energy", "Energy", "total_energy",
          "free_energy", "U0", "E"
  forces  calculator results "forces", then arrays "forces", "force", "Forces", "F"
  stress  calculator results "stress", then info "stress" (6-vector or 3x3)
  dipole  calculator results "dipole", then info "dipole", "dipole_moment"
  charge  info "total_charge", "charge"; key "total_charge" of a db row
  virial  info "virial" (energy unit) when there is no stress: the importer makes it the
          stress -virial / volume
An energy_key / forces_key names the property to use (results, info or arrays) instead.
ASE files carry no units: eV, Å (ASE's own units) are assumed unless given.
"""
from __future__ import annotations

from typing import Iterator


from mlpot.data.raw import RawFrame, check_keys

ENERGY_KEYS = ("energy", "Energy", "total_energy", "free_energy", "U0", "E")
FORCE_KEYS = ("forces", "force", "Forces", "F")
STRESS_KEYS = ("stress",)
DIPOLE_KEYS = ("dipole", "dipole_moment")
CHARGE_KEYS = ("total_charge", "charge")

DEFAULT_UNITS = {"energy": "eV", "length": "Å", "forces": "eV/Å", "stress": "eV/Å^3",
                 "dipole": "e*Å"}


def _first(mapping, names):
    for name in names:
        if name in mapping and mapping[name] is not None:
            return mapping[name]
    return None


def frame_from_atoms(index: int, atoms, energy_key: str | None = None,
                     forces_key: str | None = None) -> RawFrame:
    """Collect the labels of one ase.Atoms (source units untouched); energy_key / forces_key
    name the properties to use for energy and forces."""
    results = dict(atoms.calc.results) if atoms.calc is not None else {}
    named = {"energy": energy_key, "forces": forces_key}
    labels = {}
    for label, where, names in (("energy", atoms.info, ENERGY_KEYS), ("forces", atoms.arrays, FORCE_KEYS),
                                ("stress", atoms.info, STRESS_KEYS), ("dipole", atoms.info, DIPOLE_KEYS)):
        if named.get(label):
            value = _first({**atoms.info, **atoms.arrays, **results}, (named[label],))
        else:
            value = results.get(label, _first(where, names))
        if value is not None:
            labels[label] = value
    if "stress" not in labels and atoms.info.get("virial") is not None:
        labels["virial"] = atoms.info["virial"]
    value = _first(atoms.info, CHARGE_KEYS)
    if value is not None:
        labels["total_charge"] = value
    return RawFrame(index, atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, labels)


def read_ase(path, ase_format: str | None = None, limit: int | None = None,
             energy_key: str | None = None, forces_key: str | None = None
             ) -> tuple[dict, Iterator[RawFrame]]:
    """(declared units = {}, frames) for a file ``ase.io.iread`` can read; DataError (from the
    first frame) if energy_key / forces_key is not in it."""
    import ase.io  # lazy: ase.io loads scipy (~0.8 s); mlpot.data imports this module

    index = slice(None, limit)

    def frames():
        kwargs = {"format": ase_format} if ase_format else {}
        for k, atoms in enumerate(ase.io.iread(str(path), index=index, **kwargs)):
            if k == 0:
                results = atoms.calc.results if atoms.calc is not None else {}
                check_keys(path, {*atoms.info, *atoms.arrays, *results} - {"numbers", "positions"},
                           energy_key=energy_key, forces_key=forces_key)
            frame = frame_from_atoms(k, atoms, energy_key, forces_key)
            if "total_charge" not in frame.labels and "total_charge" in atoms.info:
                frame.labels["total_charge"] = atoms.info["total_charge"]
            yield frame

    return {}, frames()

