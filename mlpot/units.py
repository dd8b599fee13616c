"""Unit conversions to mlpot's internal units (eV, Å, e, e·Å) and back.

Constants are CODATA 2018 (exact SI definitions of e and N_A since 2019).
Unit names are case-insensitive; "A", "Ang", "Angstrom" and "Å" all mean Å.
Compound units are written "ENERGY/LENGTH" (forces) or "ENERGY/LENGTH^3" (stress).
"""
from __future__ import annotations

ELEMENTARY_CHARGE = 1.602176634e-19   # C (exact)
AVOGADRO = 6.02214076e23              # 1/mol (exact)
HARTREE_EV = 27.211386245988          # eV
BOHR_ANG = 0.529177210903             # Å
SPEED_OF_LIGHT = 299792458.0          # m/s (exact)

KCAL_MOL_EV = 4184.0 / (AVOGADRO * ELEMENTARY_CHARGE)   # 0.0433641... eV
KJ_MOL_EV = 1000.0 / (AVOGADRO * ELEMENTARY_CHARGE)     # 0.0103642... eV
DEBYE_EANG = 1e-21 / SPEED_OF_LIGHT / (ELEMENTARY_CHARGE * 1e-10)  # 0.2081943... e·Å
EV_A3_TO_GPA = ELEMENTARY_CHARGE * 1e30 / 1e9           # 160.2176634 GPa per eV/Å³
EV_A3_TO_BAR = ELEMENTARY_CHARGE * 1e30 / 1e5           # 1.602176634e6 bar per eV/Å³

ENERGY_UNITS: dict[str, float] = {
    "ev": 1.0,
    "mev": 1e-3,
    "hartree": HARTREE_EV,
    "ha": HARTREE_EV,
    "rydberg": HARTREE_EV / 2,
    "ry": HARTREE_EV / 2,
    "kcal/mol": KCAL_MOL_EV,
    "kj/mol": KJ_MOL_EV,
}

LENGTH_UNITS: dict[str, float] = {
    "å": 1.0,
    "a": 1.0,
    "ang": 1.0,
    "angstrom": 1.0,
    "bohr": BOHR_ANG,
    "a0": BOHR_ANG,
    "nm": 10.0,
    "pm": 0.01,
}

DIPOLE_UNITS: dict[str, float] = {
    "e*å": 1.0,
    "e*a": 1.0,
    "e*ang": 1.0,
    "e*angstrom": 1.0,
    "eå": 1.0,
    "eang": 1.0,          # SchNetPack's "eAng"
    "ebohr": BOHR_ANG,
    "debye": DEBYE_EANG,
    "d": DEBYE_EANG,
    "e*bohr": BOHR_ANG,
    "au": BOHR_ANG,
}

CHARGE_UNITS: dict[str, float] = {"e": 1.0}


def _lookup(table: dict[str, float], unit: str, kind: str) -> float:
    key = unit.strip().lower().replace(" ", "").replace("·", "*")
    if key not in table:
        known = ", ".join(sorted(table))
        raise ValueError(f"unknown {kind} unit {unit!r}; known {kind} units: {known}")
    return table[key]


def energy_factor(unit: str) -> float:
    """Multiply an energy in `unit` by this to get eV."""
    return _lookup(ENERGY_UNITS, unit, "energy")


def length_factor(unit: str) -> float:
    """Multiply a length in `unit` by this to get Å."""
    return _lookup(LENGTH_UNITS, unit, "length")


def dipole_factor(unit: str) -> float:
    """Multiply a dipole moment in `unit` by this to get e·Å."""
    return _lookup(DIPOLE_UNITS, unit, "dipole")


def _split_compound(unit: str, kind: str) -> tuple[str, str, int]:
    """'kcal/mol/Å' -> ('kcal/mol', 'Å', 1); 'eV/Å^3' -> ('eV', 'Å', 3)."""
    text = unit.strip()
    power = 1
    for suffix in ("^3", "**3", "3", "³"):
        if kind == "stress" and text.endswith(suffix):
            text, power = text[: -len(suffix)], 3
            break
    if "/" not in text:
        raise ValueError(f"{kind} unit {unit!r} must read ENERGY/LENGTH"
                         f"{'^3' if kind == 'stress' else ''}, e.g. eV/Å")
    energy, length = text.rsplit("/", 1)
    return energy, length, power


def force_factor(unit: str) -> float:
    """Multiply a force in `unit` (e.g. 'kcal/mol/Å', 'Hartree/Bohr') by this to get eV/Å."""
    energy, length, _ = _split_compound(unit, "force")
    return energy_factor(energy) / length_factor(length)


def stress_factor(unit: str) -> float:
    """Multiply a stress in `unit` ('eV/Å^3', 'GPa', 'bar', 'kbar') by this to get eV/Å³."""
    key = unit.strip().lower()
    pressure = {"gpa": 1 / EV_A3_TO_GPA, "bar": 1 / EV_A3_TO_BAR, "kbar": 1e3 / EV_A3_TO_BAR}
    if key in pressure:
        return pressure[key]
    energy, length, power = _split_compound(unit, "stress")
    if power != 3:
        raise ValueError(f"stress unit {unit!r} must be ENERGY/LENGTH^3, GPa, bar or kbar")
    return energy_factor(energy) / length_factor(length) ** 3


def convert(value, from_unit: str, to_unit: str, kind: str = "energy"):
    """Convert `value` between two units of one kind ('energy', 'length', 'force', 'dipole', 'stress')."""
    factor = {"energy": energy_factor, "length": length_factor, "force": force_factor,
              "dipole": dipole_factor, "stress": stress_factor}[kind]
    return value * (factor(from_unit) / factor(to_unit))
