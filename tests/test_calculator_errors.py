"""One calculation of a model's test errors through an ASE calculator (the demo's and mlpot
learn's): known offsets between labels and a calculator come back as MAE and RMSE."""
import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot.train.evaluate import calculator_errors


def test_known_offsets_come_back_as_errors():
    structures = []
    for k in range(3):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        atoms.rattle(0.05, seed=k)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        # labels off by +0.1 eV (then -0.1, +0.1) and +0.02 eV/Å on every component
        atoms.calc = SinglePointCalculator(atoms, energy=energy + 0.1 * (-1) ** k, forces=forces + 0.02)
        structures.append(atoms)
    result = calculator_errors(EMT(), structures)
    assert result["n"] == result["n_structures"] == 3
    assert np.isclose(result["energy_mae_meV"], 100.0) and np.isclose(result["energy_rmse_meV"], 100.0)
    assert np.isclose(result["energy_mae_meV_per_atom"], 25.0)        # 4 atoms per cell
    assert np.isclose(result["forces_mae_meV_per_A"], 20.0) and result["n_force_components"] == 36
    assert "dipole_mae_eA" not in result


def test_dipole_offsets_come_back_where_model_and_labels_have_dipoles():
    from pathlib import Path

    from ase.build import molecule

    from mlpot import MLPotCalculator

    calc = MLPotCalculator(Path(__file__).parent / "fixtures" / "models" / "schnet_dipole_float64.pt")
    atoms = molecule("CH3OH")
    work = atoms.copy()
    work.calc = calc
    energy, forces, dipole = work.get_potential_energy(), work.get_forces(), work.get_dipole_moment()
    atoms.calc = SinglePointCalculator(atoms, energy=energy + 0.05, forces=forces, dipole=dipole + 0.1)
    result = calculator_errors(calc, [atoms])
    assert np.isclose(result["energy_mae_meV"], 50.0) and np.isclose(result["forces_mae_meV_per_A"], 0.0)
    assert np.isclose(result["dipole_mae_eA"], 0.1)
