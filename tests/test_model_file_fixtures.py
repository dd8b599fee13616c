"""Model files written by the mlpot of format version 1 (tests/fixtures/make_model_files.py,
2026-12-07) load with today's mlpot and give the numbers they gave then: SchNet float32
tabulated, float64 fused and reference, wACSF, a dipole model and a committee of two, on a
molecule, a molecule squeezed into the pair repulsion and a triclinic periodic cell."""
import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from mlpot import MLPotCalculator

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
COMMITTEE = ["committee_member_0", "committee_member_1"]
# float64 files: the same arithmetic up to summation order; float32: float32 rounding of
# energies of ~4000 eV (atomic reference energies included) and of forces of a few eV/Å
TOLERANCE = {"float64": {"energy": 1e-8, "forces": 1e-9, "other": 1e-9},
             "float32": {"energy": 5e-3, "forces": 2e-4, "other": 2e-4}}


def structure(name: str) -> Atoms:
    s = EXPECTED["structures"][name]
    return Atoms(numbers=s["numbers"], positions=s["positions"], cell=s["cell"], pbc=s["pbc"])


@pytest.fixture(scope="module")
def calculators():
    cache = {}

    def get(name):
        if name not in cache:
            files = [FIXTURES / "models" / f"{m}.pt" for m in (COMMITTEE if name == "committee" else [name])]
            cache[name] = MLPotCalculator(files if name == "committee" else files[0])
        return cache[name]
    return get


@pytest.mark.parametrize("system", sorted(EXPECTED["structures"]))
@pytest.mark.parametrize("name", sorted(EXPECTED["models"]))
def test_version_1_files_give_the_numbers_they_gave(calculators, name, system):
    calc = calculators(name)
    tolerance = TOLERANCE[calc.metadata["dtype"]]
    expected = EXPECTED["models"][name][system]
    atoms = structure(system)
    atoms.calc = calc
    assert atoms.get_potential_energy() == pytest.approx(expected["energy"], abs=tolerance["energy"])
    np.testing.assert_allclose(atoms.get_forces(), expected["forces"], rtol=0, atol=tolerance["forces"])
    np.testing.assert_allclose(atoms.get_potential_energies(), expected["energies"], rtol=0,
                               atol=tolerance["energy"])
    if "stress" in expected:
        np.testing.assert_allclose(atoms.get_stress(), expected["stress"], rtol=0, atol=tolerance["other"])
    if "dipole" in expected:
        np.testing.assert_allclose(atoms.get_dipole_moment(), expected["dipole"], rtol=0, atol=tolerance["other"])
    for key in ("energy_std", "forces_std", "uncertainty"):
        if key in expected:
            np.testing.assert_allclose(calc.results[key], expected[key], rtol=0, atol=tolerance["other"])


def test_the_fixtures_exercise_what_they_claim():
    from mlpot.deploy.export import read_metadata

    kernels = {name: read_metadata(FIXTURES / "models" / f"{name}.pt")["kernels"]
               for name in ("schnet_float32_tabulated", "schnet_float64_fused", "schnet_float64_reference")}
    assert kernels == {"schnet_float32_tabulated": "tabulated", "schnet_float64_fused": "fused",
                       "schnet_float64_reference": "reference"}
    assert all(read_metadata(FIXTURES / "models" / f"{name}.pt")["format_version"] == 1
               for name in EXPECTED["models"] if name != "committee")
    models = EXPECTED["models"]
    squeezed = models["schnet_float64_fused"]["ethanol_squeezed"]
    assert np.abs(squeezed["forces"]).max() > 1.0                          # the wall pushes
    assert "dipole" in models["schnet_dipole_float64"]["ethanol"]
    assert models["committee"]["ethanol"]["uncertainty"] > 0
    assert "stress" in models["wacsf_float64"]["periodic_ethanol"]
