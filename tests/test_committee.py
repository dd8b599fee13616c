"""Committees: the statistics (mlpot.deploy.committee) and MLPotCalculator with several model files,
stacked into one model (mlpot.kernels.stacked) or, where they cannot be, one by one. (The stacked
engine's physics, and its members' equality with each member alone: tests/test_physics.py,
committee_stacked.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from export_helpers import CUTOFF, ethanol, periodic_ethanol, tiny_potential
from mlpot import MLPotCalculator
from mlpot.deploy.committee import CommitteeError, committee_statistics, deviation_summary
from mlpot.deploy.export import export_model, load_model
from mlpot.kernels.stacked import stackable
from mlpot.model.config import ModelConfig, build_potential


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    folder = tmp_path_factory.mktemp("committee")
    paths = []
    for seed in range(3):
        path = folder / f"model_{seed}.pt"
        export_model(tiny_potential(dipole=True, seed=seed), path, "float64")
        paths.append(path)
    return paths


def single(path, atoms, properties=("energy", "forces", "stress", "dipole")):
    atoms = atoms.copy()
    atoms.calc = MLPotCalculator(path, skin=0.0)
    atoms.calc.calculate(atoms, list(properties))
    return atoms.calc.results


def test_statistics_by_hand():
    energies = [1.0, 2.0, 4.0]
    forces = np.zeros((3, 2, 3))
    forces[:, 0, 0] = [0.0, 1.0, 2.0]        # atom 0: mean 1, deviations -1, 0, 1 along x
    forces[:, 1] = [[1.0, 1.0, 1.0]] * 3     # atom 1: all members agree
    stats = committee_statistics(energies, forces)
    assert stats["energy"] == pytest.approx(7 / 3)
    assert stats["energy_std"] == pytest.approx(np.std(energies))
    np.testing.assert_allclose(stats["forces"][0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(stats["forces_std"], [np.sqrt(2 / 3), 0.0])
    assert stats["uncertainty"] == pytest.approx(np.sqrt(2 / 3))
    assert deviation_summary(stats["forces_std"]) == pytest.approx(
        {"max": np.sqrt(2 / 3), "min": 0.0, "mean": np.sqrt(2 / 3) / 2})
    with pytest.raises(ValueError, match="energies"):
        committee_statistics([1.0, 2.0], np.zeros((3, 2, 3)))


def test_committee_is_the_mean_of_its_members(members):
    atoms = periodic_ethanol()
    parts = [single(p, atoms) for p in members]
    atoms.calc = MLPotCalculator(members, skin=0.0)
    energy = atoms.get_potential_energy()
    assert energy == pytest.approx(np.mean([r["energy"] for r in parts]), abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), np.mean([r["forces"] for r in parts], axis=0), atol=1e-12)
    np.testing.assert_allclose(atoms.get_stress(), np.mean([r["stress"] for r in parts], axis=0), atol=1e-12)
    np.testing.assert_allclose(atoms.get_dipole_moment(), np.mean([r["dipole"] for r in parts], axis=0),
                               atol=1e-12)
    np.testing.assert_allclose(atoms.get_potential_energies(),
                               np.mean([r["energies"] for r in parts], axis=0), atol=1e-12)
    results = atoms.calc.results
    expected = committee_statistics([r["energy"] for r in parts], [r["forces"] for r in parts])
    assert results["energy_std"] == pytest.approx(expected["energy_std"], abs=1e-10)
    np.testing.assert_allclose(results["forces_std"], expected["forces_std"], atol=1e-12)
    assert atoms.calc.get_property("uncertainty", atoms) == pytest.approx(expected["uncertainty"], abs=1e-12)
    assert results["forces_std"].shape == (len(atoms),)
    assert atoms.calc.n_neighbor_builds == 1    # one neighbour list for all members


def test_committee_hessian_is_the_mean(members):
    atoms = ethanol()
    hessians = []
    for path in members:
        calc = MLPotCalculator(path)
        hessians.append(calc.get_hessian(atoms))
    committee = MLPotCalculator(members).get_hessian(atoms)
    np.testing.assert_allclose(committee, np.mean(hessians, axis=0), atol=1e-10)


def test_single_model_has_no_committee_results(members):
    atoms = ethanol()
    atoms.calc = MLPotCalculator(members[0])
    atoms.get_forces()
    assert "uncertainty" not in atoms.calc.results
    assert "uncertainty" not in atoms.calc.implemented_properties
    one = MLPotCalculator([members[0]])
    assert not one.is_committee


def test_uncertainty_grows_with_distortion(tmp_path):
    """A committee trained on the same data disagrees more the farther a structure lies from it.
    Three tiny SchNets (seeds 0, 1, 2) are fitted for 100 Adam steps to the forces of a fixed
    random "teacher" SchNet on 6 ethanols rattled by 0.05 Å; the uncertainty (largest per-atom
    force deviation), averaged over 8 structures rattled by 0, 0.1, 0.2, 0.4 Å, must rise at
    every step and end 3x above its value at the equilibrium. Untrained members (the `members`
    fixture) fail this: their disagreement is large everywhere and does not grow. Checked over
    5 member seed triples x 3 sets of 8 rattle seeds: smallest step ratio 1.11 (0.2 -> 0.4 Å),
    smallest 0.4 Å / 0 Å ratio 11."""
    from mlpot import keys as K
    from mlpot.data.batch import atoms_to_batch

    teacher = tiny_potential(dipole=False, seed=100)
    batch = atoms_to_batch([ethanol(rattle=0.05, seed=s) for s in range(100, 106)], CUTOFF,
                           dtype=torch.float64)
    target = teacher(batch)[K.FORCES].detach()
    paths = []
    for seed in range(3):
        student = tiny_potential(dipole=False, seed=seed)
        optimizer = torch.optim.Adam(student.parameters(), lr=1e-2)
        for _ in range(100):
            loss = (student(batch, create_graph=True)[K.FORCES] - target).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        paths.append(tmp_path / f"student_{seed}.pt")
        export_model(student.eval(), paths[-1], "float64")
    calc = MLPotCalculator(paths)
    means = []
    for rattle in (0.0, 0.1, 0.2, 0.4):
        values = []
        for seed in range(1, 9):
            atoms = ethanol(rattle=rattle, seed=seed)
            atoms.calc = calc
            values.append(calc.get_property("uncertainty", atoms))
        means.append(np.mean(values))
    assert np.all(np.diff(means) > 0), f"uncertainty against distortion: {means}"
    assert means[-1] > 3 * means[0], f"uncertainty against distortion: {means}"


def test_mismatched_members_are_refused(members, tmp_path):
    other = tmp_path / "other_cutoff.pt"
    torch.manual_seed(0)
    potential = build_potential(ModelConfig(n_atom_basis=8, n_filters=8, n_interactions=1, n_rbf=4, cutoff=3.0),
                                [1, 6, 8])
    export_model(potential.double(), other, "float64")
    with pytest.raises(CommitteeError, match=r"cutoff.*other_cutoff\.pt"):
        MLPotCalculator([members[0], other])
    species = tmp_path / "other_species.pt"
    potential = build_potential(ModelConfig(n_atom_basis=8, n_filters=8, n_interactions=1, n_rbf=4, cutoff=4.0),
                                [1, 6])
    export_model(potential.double(), species, "float64")
    with pytest.raises(CommitteeError, match="elements"):
        MLPotCalculator([members[0], species])
    float32 = tmp_path / "float32.pt"
    export_model(tiny_potential(seed=5), float32, "float32")
    with pytest.raises(ValueError, match="dtype"):
        MLPotCalculator([members[0], float32])
    with pytest.raises(ValueError, match="needs a model"):
        MLPotCalculator([])


def test_members_in_threads_give_the_same_results(members):
    atoms = periodic_ethanol()
    serial, threaded = atoms.copy(), atoms.copy()
    serial.calc = MLPotCalculator(members)
    threaded.calc = MLPotCalculator(members, parallel_members=2)
    np.testing.assert_array_equal(serial.get_forces(), threaded.get_forces())
    np.testing.assert_array_equal(serial.get_stress(), threaded.get_stress())
    assert serial.calc.results["uncertainty"] == threaded.calc.results["uncertainty"]


# --- stacked members -------------------------------------------------------------------------

def export_members(folder, dtype: str, n: int = 3, dipole: bool = False):
    paths = []
    for seed in range(n):
        path = folder / f"member_{dtype}_{seed}_{dipole}.pt"
        export_model(tiny_potential(dipole=dipole, seed=seed), path, dtype)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def stackable_members(tmp_path_factory):
    """Three float64 members without a dipole head: SchNet with the written-out forces, stackable."""
    from mlpot import ops

    if not ops.available():
        pytest.skip(f"fused kernels not available: {ops.error()}")
    return export_members(tmp_path_factory.mktemp("stacked"), "float64")


def test_calculator_stacked_equals_one_by_one(stackable_members):
    atoms = periodic_ethanol()
    results = {}
    for stacked in (True, False):
        a = atoms.copy()
        a.calc = MLPotCalculator(stackable_members, skin=0.0, stacked=stacked)
        assert (a.calc.stacked is not None) == stacked
        a.calc.calculate(a, ["energy", "forces", "stress"])
        results[stacked] = a.calc.results
    for key in ("energy", "energy_std", "forces", "forces_std", "uncertainty", "stress", "energies"):
        np.testing.assert_allclose(results[True][key], results[False][key], rtol=0, atol=1e-12, err_msg=key)


def test_per_atom_stresses_fall_back_to_members(stackable_members):
    atoms = periodic_ethanol()
    a, b = atoms.copy(), atoms.copy()
    a.calc = MLPotCalculator(stackable_members, skin=0.0)
    b.calc = MLPotCalculator(stackable_members, skin=0.0, stacked=False)
    assert a.calc.stacked is not None
    np.testing.assert_allclose(a.get_stresses(), b.get_stresses(), atol=1e-14)
    np.testing.assert_allclose(a.get_forces(), b.get_forces(), atol=1e-12)


def test_members_that_cannot_be_stacked_run_one_by_one(stackable_members, tmp_path):
    with_dipole = export_members(tmp_path, "float64", n=2, dipole=True)
    assert "written-out" in stackable([load_model(p)[0] for p in with_dipole])
    torch.manual_seed(5)
    wider = build_potential(ModelConfig(n_atom_basis=24, n_filters=24, n_interactions=2, n_rbf=8, cutoff=4.0),
                            [1, 6, 8])
    export_model(wider.double().eval(), tmp_path / "wider.pt", "float64")
    mixed = [stackable_members[0], tmp_path / "wider.pt"]
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
