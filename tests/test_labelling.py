"""mlpot.sim.labelling: labelling with ASE calculators, MD and normal-mode sampling, storing."""
import numpy as np
import pytest
from ase import units
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron

from mlpot.data.store import read_store, store_metadata
from mlpot.sim.labelling import (label, normal_mode_displacements, reference_modes, sample_md,
                             sample_normal_modes, write_reference)
from test_spectra import SpringsWithCharges


def test_emt_labels_round_trip_through_the_store(tmp_path):
    cluster = Icosahedron("Cu", 2)
    structures = []
    rng = np.random.default_rng(1)
    for _ in range(3):
        s = cluster.copy()
        s.rattle(0.05, rng=rng)
        structures.append(s)
    labelled = label(structures, EMT(), progress=False)
    assert set(labelled[0].calc.results) == {"energy", "forces"}      # EMT has no dipole
    path = tmp_path / "emt.db"
    assert write_reference(path, labelled, EMT(), settings={"note": "rattled"}) == 3
    back = read_store(path)
    for a, b in zip(labelled, back):
        assert b.get_potential_energy() == pytest.approx(a.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(b.get_forces(), a.get_forces(), atol=1e-10)
    meta = store_metadata(path)
    assert meta["reference"] == {"calculator": "EMT", "note": "rattled"}
    assert meta["units"]["energy"] == "eV"
    with pytest.raises(FileExistsError, match="--force"):
        write_reference(path, labelled, EMT())


def test_normal_mode_sampling_gives_equipartition_for_a_harmonic_model():
    atoms = molecule("H2O")
    calc = SpringsWithCharges(atoms, k=30.0, charges=[-0.8, 0.4, 0.4])
    modes, dmu = reference_modes(atoms, calc, delta=0.005)
    assert dmu.shape == (9, 3)
    temperature = 100.0
    samples = normal_mode_displacements(atoms, modes, temperature, 2000, min_frequency=1.0, seed=3)
    energies = []
    for s in samples:
        s.calc = calc
        energies.append(s.get_potential_energy())
    # 3 vibrational modes, each <E> = k_B T / 2 (small T: nearly harmonic)
    assert np.mean(energies) == pytest.approx(1.5 * units.kB * temperature, rel=0.05)
    # no rigid-body motion: centre of mass and orientation unchanged to first order
    com = [s.get_center_of_mass() for s in samples[:50]]
    np.testing.assert_allclose(com, np.tile(atoms.get_center_of_mass(), (50, 1)), atol=1e-10)


def test_md_samples_are_labelled_snapshots_at_temperature():
    atoms = molecule("H2O")
    calc = SpringsWithCharges(atoms, k=30.0, charges=[-0.8, 0.4, 0.4])
    samples = sample_md(atoms, calc, temperature=300.0, n_samples=4, interval=5,
                        equilibration=20, progress=False)
    assert len(samples) == 4
    for s in samples:
        assert set(s.calc.results) == {"energy", "forces", "dipole"}
        fresh = s.copy()
        fresh.calc = calc
        assert fresh.get_potential_energy() == pytest.approx(s.get_potential_energy(), abs=1e-12)
        np.testing.assert_allclose(fresh.get_dipole_moment(), s.get_dipole_moment(), atol=1e-12)
        assert not s.constraints
    assert not np.allclose(samples[0].positions, samples[1].positions)


def test_gfn2_xtb_reference_for_water(tmp_path):
    pytest.importorskip("tblite")
    from mlpot.sim.labelling import default_calculator
    calc = default_calculator()
    atoms = molecule("H2O")
    md = sample_md(atoms, calc, 500.0, n_samples=3, interval=5, equilibration=10, progress=False)
    nm = sample_normal_modes(atoms, calc, 500.0, n_samples=2, progress=False)
    structures = md + nm
    for s in structures:
        assert set(s.calc.results) == {"energy", "forces", "dipole"}
        # GFN2-xTB water dipole is ~2.2 D = 0.46 e·Å: tblite reports e·Å (not Debye)
        assert 0.3 < np.linalg.norm(s.get_dipole_moment()) < 0.6
        assert -150 < s.get_potential_energy() < -130                      # eV
    path = tmp_path / "water.db"
    write_reference(path, structures, calc, settings={"temperature_K": 500.0})
    assert store_metadata(path)["reference"]["calculator"] == "GFN2-xTB (TBLite)"
    assert len(read_store(path)) == 5


def test_bad_input_is_reported():
    atoms = molecule("H2O")
    with pytest.raises(ValueError, match="unknown label"):
        label([atoms], EMT(), properties=("energy", "charges"), progress=False)
    with pytest.raises(ValueError, match="temperature"):
        sample_md(atoms, EMT(), temperature=-5.0, n_samples=1, progress=False)


def test_count_calls_counts_evaluations_not_cached_results():
    from mlpot.sim.labelling import count_calls

    atoms = Icosahedron("Cu", 2)
    calc = count_calls(EMT())
    assert count_calls(calc) is calc and calc.reference_calls == 0    # counting twice keeps one counter
    atoms.calc = calc
    atoms.get_potential_energy()
    atoms.get_forces()                           # served from the cache: no new evaluation
    assert calc.reference_calls == 1
    atoms.positions[0, 0] += 0.01
    atoms.get_forces()
    assert calc.reference_calls == 2
    moved = [atoms.copy() for _ in range(2)]
    for k, m in enumerate(moved):
        m.rattle(0.05, seed=k)
    labelled = label(moved, calc, properties=("energy", "forces"), progress=False)
    assert len(labelled) == 2 and calc.reference_calls == 4
    # MD snapshots: every MD step is an evaluation, the snapshots add none
    sample_md(atoms, calc, 300.0, 3, interval=4, equilibration=5, progress=False)
    assert calc.reference_calls == 4 + 1 + 5 + 3 * 4    # + the initial forces of the integrator
