import numpy as np
import pytest
from ase import units as ase_units

from mlpot import units


def test_known_values():
    assert units.energy_factor("kcal/mol") == pytest.approx(0.04336410424, rel=1e-9)
    assert units.energy_factor("kJ/mol") == pytest.approx(0.010364269656, rel=1e-9)
    assert units.energy_factor("Hartree") == pytest.approx(27.211386245988)
    assert units.length_factor("Bohr") == pytest.approx(0.529177210903)
    assert units.dipole_factor("Debye") == pytest.approx(0.20819434, rel=1e-7)
    assert units.force_factor("Hartree/Bohr") == pytest.approx(51.422067476326, rel=1e-12)
    assert units.stress_factor("GPa") == pytest.approx(1 / 160.21766208, rel=1e-8)


def test_agrees_with_ase_codata():
    # ASE's default constants are CODATA 2014; agreement to ~1e-7 relative is expected
    assert units.energy_factor("kcal/mol") == pytest.approx(ase_units.kcal / ase_units.mol, rel=1e-6)
    assert units.energy_factor("Hartree") == pytest.approx(ase_units.Hartree, rel=1e-7)
    assert units.length_factor("Bohr") == pytest.approx(ase_units.Bohr, rel=1e-7)
    assert units.dipole_factor("Debye") == pytest.approx(ase_units.Debye, rel=1e-6)


@pytest.mark.parametrize("kind,a,b", [
    ("energy", "kcal/mol", "eV"), ("energy", "Hartree", "kJ/mol"), ("length", "Bohr", "nm"),
    ("force", "kcal/mol/Å", "eV/Ang"), ("force", "Hartree/Bohr", "eV/A"), ("dipole", "Debye", "e*Å"),
    ("stress", "eV/Å^3", "GPa"), ("stress", "kbar", "eV/A^3"),
])
def test_round_trip(kind, a, b):
    x = np.array([1.0, -2.5, 1e-3])
    np.testing.assert_allclose(units.convert(units.convert(x, a, b, kind), b, a, kind), x, rtol=1e-14)


def test_spellings():
    for name in ("Å", "A", "Ang", "angstrom", "ANGSTROM"):
        assert units.length_factor(name) == 1.0


def test_unknown_unit_names_known_ones():
    with pytest.raises(ValueError, match="unknown energy unit 'furlong'.*kcal/mol"):
        units.energy_factor("furlong")
    with pytest.raises(ValueError, match="ENERGY/LENGTH"):
        units.force_factor("eV")
