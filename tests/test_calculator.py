"""MLPotCalculator: the ASE calculator contract, caching, skin logic, Hessian (of every kernel's
files against finite differences of their forces), the written-out path's forces, Infrared, NVE."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from export_helpers import CUTOFF, ethanol, periodic_ethanol, sharpened, tiny_potential
from mlpot import MLPotCalculator
from mlpot import keys as K
from mlpot.data.batch import atoms_to_batch
from mlpot.deploy.export import export_model

try:  # ASE ≥ 3.29
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def potential():
    return tiny_potential(dipole=True)


@pytest.fixture(scope="module")
def model64(potential, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "model64.pt"
    export_model(potential, path, "float64")
    return path


def fresh(model, atoms, properties=("energy", "forces")):
    """Results of a new calculator (no cache, no skin) for a copy of `atoms`."""
    atoms = atoms.copy()
    atoms.calc = MLPotCalculator(model, skin=0.0)
    atoms.calc.calculate(atoms, list(properties))
    return atoms.calc.results


def test_contract_shapes_and_eager_agreement(potential, model64):
    atoms = periodic_ethanol()
    atoms.calc = MLPotCalculator(model64)
    n = len(atoms)
    energy = atoms.get_potential_energy()
    assert isinstance(energy, float)
    assert atoms.get_potential_energy(force_consistent=True) == energy
    assert atoms.get_potential_energies().shape == (n,)
    assert atoms.get_potential_energies().sum() == pytest.approx(energy, rel=1e-13)
    assert atoms.get_forces().shape == (n, 3)
    assert atoms.get_stress().shape == (6,)
    assert atoms.get_dipole_moment().shape == (3,)
    eager = {k: v.detach() for k, v in
             potential(atoms_to_batch(atoms, CUTOFF, dtype=torch.float64), compute_stress=True).items()}
    assert energy == pytest.approx(float(eager[K.ENERGY][0]), rel=1e-13)
    np.testing.assert_allclose(atoms.get_forces(), eager[K.FORCES].numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(atoms.get_dipole_moment(), eager[K.DIPOLE][0].numpy(), atol=1e-12)
    s = eager[K.STRESS][0].numpy()
    np.testing.assert_allclose(atoms.get_stress(), [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]],
                               rtol=0, atol=1e-12)
    virial = eager[K.VIRIAL][0].numpy()
    np.testing.assert_allclose(atoms.get_stress(voigt=False), -virial / atoms.get_volume(), atol=1e-12)


def test_stress_is_strain_derivative_and_forces_are_gradient(model64):
    atoms = periodic_ethanol()
    calc = MLPotCalculator(model64)
    atoms.calc = calc
    numerical = calculate_numerical_stress(atoms, eps=1e-5, voigt=True)
    np.testing.assert_allclose(atoms.get_stress(), numerical, rtol=0, atol=1e-8)
    assert np.abs(atoms.get_stress()).max() > 1e-4, "stress too small to test anything"
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-4),
                               rtol=0, atol=2e-7)


def test_stress_needs_3d_periodicity(model64):
    for pbc in (False, [True, True, False]):
        atoms = periodic_ethanol()
        atoms.pbc = pbc
        atoms.calc = MLPotCalculator(model64)
        atoms.get_forces()
        with pytest.raises(PropertyNotImplementedError, match="3-D periodic"):
            atoms.get_stress()


def test_no_dipole_without_dipole_head(tmp_path):
    path = tmp_path / "nodipole.pt"
    export_model(tiny_potential(dipole=False), path, "float64")
    atoms = ethanol()
    atoms.calc = MLPotCalculator(path)
    assert "dipole" not in atoms.calc.implemented_properties
    atoms.get_forces()
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_dipole_moment()


def test_cache_reused_then_invalidated_by_each_change(model64):
    atoms = periodic_ethanol()
    calc = MLPotCalculator(model64)
    atoms.calc = calc
    atoms.get_potential_energy()
    atoms.get_forces()
    atoms.get_potential_energy()
    assert calc.n_evaluations == 1, "unchanged atoms must reuse the results"

    def changed(change):
        before = calc.n_evaluations, atoms.get_potential_energy()
        change(atoms)
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        expected = fresh(model64, atoms)
        assert calc.n_evaluations == before[0] + 1
        assert energy != before[1]
        assert energy == pytest.approx(expected["energy"], rel=1e-13)
        np.testing.assert_allclose(forces, expected["forces"], atol=1e-12)

    changed(lambda a: a.positions.__setitem__((0, 0), a.positions[0, 0] + 0.01))  # in place
    changed(lambda a: a.set_atomic_numbers(np.roll(a.numbers, 1)))
    changed(lambda a: a.set_cell(a.cell.array * 1.02, scale_atoms=False))
    changed(lambda a: a.set_pbc([True, True, False]))
    changed(lambda a: a.set_pbc(False))
    before = calc.n_evaluations
    atoms.set_initial_charges(np.linspace(-0.1, 0.1, len(atoms)))   # not a model input, but a change
    atoms.get_potential_energy()
    assert calc.n_evaluations == before + 1
    atoms.get_forces()
    assert calc.n_evaluations == before + 1


def test_skin_reuses_list_until_an_atom_moves_half_the_skin(model64):
    # two molecules; O of the second starts 0.1 Å beyond the cutoff from C of the first
    first, second = ethanol(rattle=0.0), ethanol(rattle=0.0)
    c, o = 0, 2
    assert first.get_chemical_symbols()[c] == "C" and second.get_chemical_symbols()[o] == "O"
    direction = np.array([1.0, 0.0, 0.0])
    second.positions += first.positions[c] - second.positions[o] + (CUTOFF + 0.1) * direction + [0, 3.0, 0]
    second.positions -= [0, 3.0, 0]
    atoms = first + second
    o_index = len(first) + o
    calc = MLPotCalculator(model64, skin=0.5)
    atoms.calc = calc
    atoms.get_forces()
    assert calc.n_neighbor_builds == 1

    def step(shift, builds):
        atoms.positions[o_index] += shift
        forces = atoms.get_forces()
        assert calc.n_neighbor_builds == builds
        expected = fresh(model64, atoms)
        assert atoms.get_potential_energy() == pytest.approx(expected["energy"], rel=1e-13)
        np.testing.assert_allclose(forces, expected["forces"], atol=1e-12)

    distance = lambda: atoms.get_distance(c, o_index)  # noqa: E731
    step(-0.2 * direction, 1)          # moved 0.2 < skin/2: same list, the pair is now inside
    assert distance() < CUTOFF
    step(+0.2 * direction, 1)          # back outside: filtered again, no rebuild
    assert distance() > CUTOFF
    step(+0.24 * direction, 1)         # 0.24 from where the list was built: still no rebuild
    step(+0.02 * direction, 2)         # 0.26 > skin/2: rebuilt
    step(0.0 * direction, 2)
    atoms.set_cell(np.eye(3) * 30.0)   # cell change rebuilds even without motion
    step(0.0 * direction, 3)
    atoms.numbers[0] = 8               # so does a change of numbers
    step(0.0 * direction, 4)


def test_unknown_element_and_nan_positions(model64):
    atoms = Atoms("SiH4", positions=np.random.default_rng(0).normal(0, 1.0, (5, 3)))
    atoms.calc = MLPotCalculator(model64)
    with pytest.raises(ValueError, match=r"element\(s\) Si not in the model .* trained on H, C, O"):
        atoms.get_potential_energy()
    atoms = ethanol()
    atoms.calc = MLPotCalculator(model64)
    atoms.get_forces()                  # a valid call first: the species check is then skipped
    atoms.numbers[0] = 14               # until the numbers change
    with pytest.raises(ValueError, match=r"element\(s\) Si not in the model"):
        atoms.get_forces()
    atoms = ethanol()
    atoms.positions[3, 1] = np.nan
    atoms.calc = MLPotCalculator(model64)
    with pytest.raises(ValueError, match=r"positions of atoms \[3\] are NaN"):
        atoms.get_forces()


def test_hessian_equals_finite_differences_of_forces(model64):
    atoms = ethanol()
    calc = MLPotCalculator(model64)
    atoms.calc = calc
    hessian = calc.get_hessian(atoms)
    n = len(atoms)
    assert hessian.shape == (3 * n, 3 * n)
    np.testing.assert_array_equal(hessian, hessian.T)
    h = 1e-4
    x0 = atoms.positions.copy()
    numerical = np.zeros_like(hessian)
    for k in range(3 * n):
        for sign in (1, -1):
            atoms.positions = x0
            atoms.positions[k // 3, k % 3] += sign * h
            numerical[k] -= sign * atoms.get_forces().ravel() / (2 * h)
    atoms.positions = x0
    assert np.abs(hessian).max() > 0.1
    np.testing.assert_allclose(hessian, 0.5 * (numerical + numerical.T), rtol=0, atol=1e-6)


def fused_kernels():
    from mlpot import ops

    if not ops.available():
        pytest.skip(f"fused kernels not available: {ops.error()}")


@pytest.mark.parametrize("kernels", ["fused", "tabulated"])
def test_calculator_forces_with_the_written_out_path(tmp_path, kernels):
    """A file with the written-out forces (SchNet, fused or tabulated kernels, no dipole head)
    through MLPotCalculator: forces equal central finite differences of the energy."""
    fused_kernels()
    potential = sharpened(tiny_potential(dipole=False))
    path = tmp_path / "model.pt"
    export_model(potential, path, dtype="float64", kernels=kernels)
    atoms = ethanol()
    atoms.calc = MLPotCalculator(path)
    assert atoms.calc.modules[0].original_name == "ExportedSchNet"
    forces = atoms.get_forces()
    h = 1e-5
    numeric = np.zeros_like(forces)
    for a in range(len(atoms)):
        for c in range(3):
            for sign in (1, -1):
                moved = atoms.copy()
                moved.calc = atoms.calc
                moved.positions[a, c] += sign * h
                numeric[a, c] -= sign * moved.get_potential_energy() / (2 * h)
    np.testing.assert_allclose(forces, numeric, atol=1e-6)


# (dtype, kernels, step h in Å, atol in eV/Å²). float64: h = 1e-5 leaves a truncation error near
# 1e-8 eV/Å² (|H| up to ~35 eV/Å²; found 1.2e-8 for both kernels). float32 (tabulated, its default):
# the forces carry float32 rounding (~1e-7 relative, positions too), which the difference
# divides by 2h: h = 3e-3 Å balances it against the h² truncation error; found 1.7e-3 to 2.9e-3
# eV/Å², and the float32 Hessian itself is only good to ~1e-3 eV/Å² (the calculator's warning).
HESSIAN_CASES = [("float64", "fused", 1e-5, 1e-6), ("float64", "tabulated", 1e-5, 1e-6),
                 ("float32", "tabulated", 3e-3, 2e-2)]


@pytest.mark.parametrize("dtype, kernels, h, atol", HESSIAN_CASES)
def test_hessian_of_each_kernel_equals_finite_differences_of_its_forces(tmp_path, dtype, kernels, h, atol):
    """get_hessian (autograd through the scripted potential) against central differences of the
    file's own forces (the written-out path), for the fused and tabulated kernels: each row k is
    -(F(x + h e_k) - F(x - h e_k)) / 2h, compared entry by entry, not symmetrised."""
    import warnings

    fused_kernels()
    potential = sharpened(tiny_potential(dipole=False))
    path = tmp_path / "model.pt"
    export_model(potential, path, dtype=dtype, kernels=kernels)
    atoms = ethanol()
    atoms.calc = MLPotCalculator(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*float32 rounding")    # float32's known warning
        hessian = atoms.calc.get_hessian(atoms)
    x0 = atoms.positions.copy()
    numeric = np.zeros((3 * len(atoms), 3 * len(atoms)))
    for k in range(3 * len(atoms)):
        for sign in (1, -1):
            atoms.positions = x0
            atoms.positions[k // 3, k % 3] += sign * h
            numeric[k] -= sign * atoms.get_forces().ravel() / (2 * h)
    atoms.positions = x0
    assert np.abs(hessian).max() > 10.0           # stiff enough that a wrong term shows
    np.testing.assert_allclose(hessian, numeric, rtol=0, atol=atol)


def test_ase_infrared_runs(model64, tmp_path):
    from ase.vibrations import Infrared

    atoms = ethanol()
    calc = MLPotCalculator(model64)
    atoms.calc = calc
    ir = Infrared(atoms, name=str(tmp_path / "ir"), delta=0.005)
    ir.run()
    ir.read()
    intensities = ir.intensities
    assert intensities.shape == (3 * len(atoms),) and np.all(np.isfinite(intensities))
    assert intensities.max() > 0
    # ASE's finite-difference Hessian against ours
    fd = ir.get_vibrations().get_hessian_2d()
    np.testing.assert_allclose(fd, calc.get_hessian(atoms), rtol=0, atol=1e-3 * np.abs(fd).max())


def test_float64_nve_conserves_energy(potential, tmp_path):
    from ase import units
    from ase.md.velocitydistribution import Stationary
    from ase.md.verlet import VelocityVerlet

    gentle = copy.deepcopy(potential)
    gentle.repulsion.strength.fill_(2.0)   # eV: the test wall on the X–H bonds, as soft as the network
    export_model(gentle, tmp_path / "gentle.pt", "float64")
    atoms = ethanol()
    calc = MLPotCalculator(tmp_path / "gentle.pt", skin=0.5)
    atoms.calc = calc
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(0))
    Stationary(atoms)
    dynamics = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    energies = []
    dynamics.attach(lambda: energies.append(atoms.get_total_energy()), interval=10)
    dynamics.run(2000)
    deviation = np.abs(np.array(energies) - energies[0]).max() / len(atoms)
    assert deviation < 1e-4, f"total energy wandered {deviation:.2e} eV/atom in 2000 steps"
    assert 1 < calc.n_neighbor_builds < calc.n_evaluations / 2, "the skin list was not reused"


def test_skin_pairs_are_each_pair_of_the_edge_list_once():
    """SkinNeighborList.pairs (what .pt2 files take): every unordered pair of `edges` once, with
    its vector, in a triclinic cell smaller than the cutoff (atoms meet their own images) and
    after a move inside the skin that takes pairs beyond the cutoff; overlaps refused."""
    from mlpot.deploy.skin_neighbors import OverlapError, SkinNeighborList

    rng = np.random.default_rng(3)
    cell = np.array([[3.1, 0.0, 0.0], [0.9, 2.8, 0.0], [0.4, -0.6, 3.3]])
    positions = rng.uniform(0, 1, (4, 3)) @ cell
    numbers, pbc = np.array([1, 6, 8, 6]), np.array([True, True, True])
    skin_list = SkinNeighborList(4.0, 0.6, torch.float64, "cpu")
    for step in range(3):
        kick = rng.normal(size=positions.shape)
        moved = positions + 0.12 * step * kick / np.linalg.norm(kick, axis=1, keepdims=True)   # < skin / 2
        edge_index, shift_vectors = skin_list.edges(moved, torch.from_numpy(moved), numbers, cell, pbc)
        pair_index, pair_vectors = skin_list.pairs(moved, numbers, cell, pbc)
        full = edge_index.numpy()
        vectors = moved[full[1]] - moved[full[0]] + shift_vectors.numpy()
        both_ways = {(int(i), int(j), *np.round(v, 9)) for (i, j), v in zip(full.T, vectors)}
        halves = [(int(i), int(j), *np.round(v, 9)) for (i, j), v in zip(pair_index.numpy().T, pair_vectors.numpy())]
        reversed_halves = [(j, i, *(-np.array(v) + 0.0)) for i, j, *v in halves]
        assert len(halves) == len(both_ways) // 2 > 0
        assert set(halves) | set(reversed_halves) == both_ways
        assert any(i == j for i, j, *_ in halves), "no atom met its own image: the cell is not small enough"
    assert skin_list.n_builds == 1
    with pytest.raises(OverlapError, match="apart"):
        skin_list.pairs(np.concatenate([positions[:3], positions[:1] + 0.05]), numbers, cell, pbc)


def test_calc_atoms_is_a_copy_of_the_last_calculated_structure(model64):
    """calc.atoms (ASE's record of the last calculation, from a snapshot made when asked):
    equal to the structure then, in every array, the cell, pbc, info and constraints, and
    neither the user's object nor changed by the user's later edits."""
    from ase.constraints import FixAtoms

    atoms = periodic_ethanol()
    atoms.set_momenta(np.random.default_rng(1).normal(size=(len(atoms), 3)))
    atoms.set_tags(np.arange(len(atoms)))
    atoms.info["charge"] = 0
    atoms.set_constraint(FixAtoms(indices=[0, 2]))
    calc = MLPotCalculator(model64)
    atoms.calc = calc
    forces = atoms.get_forces(apply_constraint=False)
    then = atoms.copy()
    recorded = calc.atoms
    assert recorded is not atoms and calc.atoms is recorded
    atoms.positions += 0.05
    atoms.set_momenta(atoms.get_momenta() * 2)
    atoms.set_cell(atoms.cell.array * 1.01, scale_atoms=False)
    atoms.info["charge"] = 1
    atoms.set_constraint()
    assert sorted(recorded.arrays) == sorted(then.arrays)
    for name in then.arrays:
        np.testing.assert_array_equal(recorded.arrays[name], then.arrays[name], err_msg=name)
    np.testing.assert_array_equal(recorded.cell.array, then.cell.array)
    np.testing.assert_array_equal(recorded.pbc, then.pbc)
    assert recorded.info == then.info and recorded.info is not atoms.info
    assert [c.todict() for c in recorded.constraints] == [c.todict() for c in then.constraints]
    # ASE's get_property without atoms takes the recorded structure: the cached forces
    np.testing.assert_array_equal(calc.get_property("forces"), forces)


def test_an_atoms_subclass_is_recorded_by_its_own_copy(model64):
    class Tagged(Atoms):
        def copy(self):
            copied = super().copy()
            copied.info["copied_by"] = "Tagged"
            return copied

    atoms = Tagged(ethanol())
    atoms.calc = MLPotCalculator(model64)
    atoms.get_forces()
    assert atoms.calc.atoms.info["copied_by"] == "Tagged"
    atoms.positions[0, 0] += 0.01
    before = atoms.calc.n_evaluations
    atoms.get_forces()
    assert atoms.calc.n_evaluations == before + 1
