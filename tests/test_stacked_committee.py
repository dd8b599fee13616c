"""A committee of SchNet members evaluated as one stacked model (mlpot.kernels.stacked) gives
what its members give one by one, through MLPotCalculator too."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from export_helpers import ethanol, periodic_ethanol, tiny_potential
from mlpot import MLPotCalculator
from mlpot.deploy.export import export_model, load_model
from mlpot.model.config import ModelConfig, build_potential
from mlpot.kernels.stacked import StackedSchNet, stackable

pytestmark = pytest.mark.usefixtures("one_thread")


def export_members(folder, dtype: str, n: int = 3, dipole: bool = False):
    paths = []
    for seed in range(n):
        path = folder / f"member_{dtype}_{seed}_{dipole}.pt"
        export_model(tiny_potential(dipole=dipole, seed=seed), path, dtype)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def committees(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stacked")
    return {dtype: export_members(folder, dtype) for dtype in ("float64", "float32")}


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("structure", ["molecule", "periodic", "local_part"])
def test_stacked_equals_members_one_by_one(committees, dtype, tol, structure):
    """Fused (float64) and tabulated (float32) kernels; a molecule, a periodic cell whose images
    lie within the cutoff, and LAMMPS' form (the energy of the first n_local atoms, forces on all)."""
    modules = [load_model(p)[0] for p in committees[dtype]]
    kernels = {load_model(p)[1]["kernels"] for p in committees[dtype]}
    assert kernels == {"fused" if dtype == "float64" else "tabulated"}
    stacked = torch.jit.script(StackedSchNet(modules))
    atoms = periodic_ethanol() if structure == "periodic" else ethanol()
    positions, numbers, edge_index, shifts, cell = MLPotCalculator(committees[dtype][0], skin=0.0)._inputs(atoms)
    n_local = 5 if structure == "local_part" else len(atoms)
    with torch.jit.optimized_execution(False):
        out = stacked(positions, numbers, edge_index, shifts, n_local, True)
        for m, module in enumerate(modules):
            ref = module(positions, numbers, edge_index, shifts, cell, n_local, True)
            scale = 1.0 + float(ref["forces"].abs().max())
            assert abs(float(out["energy"][m] - ref["energy"][0])) < tol * 1e3
            for key in ("forces", "virial", "energies"):
                assert float((out[key][m] - ref[key]).abs().max()) < tol * scale * 10, key


def test_calculator_stacked_equals_one_by_one(committees):
    atoms = periodic_ethanol()
    results = {}
    for stacked in (True, False):
        a = atoms.copy()
        a.calc = MLPotCalculator(committees["float64"], skin=0.0, stacked=stacked)
        assert (a.calc.stacked is not None) == stacked
        a.calc.calculate(a, ["energy", "forces", "stress"])
        results[stacked] = a.calc.results
    for key in ("energy", "energy_std", "forces", "forces_std", "uncertainty", "stress", "energies"):
        np.testing.assert_allclose(results[True][key], results[False][key], rtol=0, atol=1e-12, err_msg=key)


def test_per_atom_stresses_fall_back_to_members(committees):
    atoms = periodic_ethanol()
    a, b = atoms.copy(), atoms.copy()
    a.calc = MLPotCalculator(committees["float64"], skin=0.0)
    b.calc = MLPotCalculator(committees["float64"], skin=0.0, stacked=False)
    assert a.calc.stacked is not None
    np.testing.assert_allclose(a.get_stresses(), b.get_stresses(), atol=1e-14)
    np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-12)


def test_members_that_cannot_be_stacked_run_one_by_one(committees, tmp_path):
    with_dipole = export_members(tmp_path, "float64", n=2, dipole=True)
    assert "written-out" in stackable([load_model(p)[0] for p in with_dipole])
    torch.manual_seed(5)
    wider = build_potential(ModelConfig(n_atom_basis=24, n_filters=24, n_interactions=2, n_rbf=8, cutoff=4.0),
                            [1, 6, 8])
    export_model(wider.double().eval(), tmp_path / "wider.pt", "float64")
    mixed = [committees["float64"][0], tmp_path / "wider.pt"]
    assert stackable([load_model(p)[0] for p in mixed]) == "the members differ in architecture"
    atoms = ethanol()
    atoms.calc = MLPotCalculator(mixed, skin=0.0)
    assert atoms.calc.stacked is None
    parts = []
    for p in mixed:
        b = atoms.copy()
        b.calc = MLPotCalculator(p, skin=0.0)
        parts.append(b.get_forces())
    np.testing.assert_allclose(atoms.get_forces(), np.mean(parts, axis=0), atol=1e-12)
