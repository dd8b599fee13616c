"""The pair repulsion below the training data's shortest contacts (mlpot.model.nn.pair_repulsion).

Every engine's agreement with it is tested where the engines are (the tiny models of the
physics, export, stacked-committee and LAMMPS tests carry a wall that acts on their bonds);
here: the wall itself, its fit to the data, and that it leaves training data untouched.
"""
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot import keys as K
from mlpot.data import atoms_to_batch, atoms_to_graph
from mlpot.model.config import ModelConfig, build_potential
from mlpot.model.nn.pair_repulsion import contact_radii, repulsion_and_slope
from mlpot.model.statistics import fit_statistics

CUTOFF = 4.0


def test_the_wall_is_zero_from_the_contact_radius_on_and_joins_smoothly():
    r0 = torch.tensor(1.2, dtype=torch.float64)
    d = torch.tensor([1.2, 1.25, 3.0, 1.2 - 1e-3], dtype=torch.float64)
    energy, slope = repulsion_and_slope(d, r0.expand(4), torch.tensor(10.0, dtype=torch.float64))
    assert energy[:3].abs().max() == 0 and slope[:3].abs().max() == 0
    # just inside: energy ~ ε³, slope ~ ε² (no kink a Verlet integrator would feel as a kick)
    assert 0 < energy[3] < 1e-7 and -1e-4 < slope[3] < 0
    # a pair without a wall (radius 0) adds nothing at any distance
    none, none_slope = repulsion_and_slope(torch.tensor([0.3, 1.0]), torch.zeros(2), torch.tensor(10.0))
    assert none.abs().max() == 0 and none_slope.abs().max() == 0


def test_the_slope_is_the_derivative_of_the_energy_and_pushes_apart():
    r0 = torch.full((7,), 1.5, dtype=torch.float64)
    d = torch.tensor([0.3, 0.5, 0.8, 1.0, 1.2, 1.4, 1.49], dtype=torch.float64)
    strength = torch.tensor(10.0, dtype=torch.float64)
    h = 1e-6
    _, slope = repulsion_and_slope(d, r0, strength)
    finite = (repulsion_and_slope(d + h, r0, strength)[0] - repulsion_and_slope(d - h, r0, strength)[0]) / (2 * h)
    np.testing.assert_allclose(slope.numpy(), finite.numpy(), rtol=1e-6, atol=1e-9)
    assert (slope < 0).all()                      # repulsive: energy falls as the atoms separate
    energy, _ = repulsion_and_slope(d, r0, strength)
    assert energy[0] > 20 and energy[1] > 5       # eV at 0.2 and 0.33 of r_ab: a wall, not a bump


def _labelled(atoms, energy=0.0):
    atoms = atoms.copy()
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.zeros((len(atoms), 3)))
    return atoms


def test_contact_radii_are_the_shortest_distances_in_the_data_images_included():
    water = molecule("H2O")                       # O–H 0.969 Å, H–H 1.527 Å
    stretched = water.copy()
    stretched.positions[1] += 0.2 * (stretched.positions[1] - stretched.positions[0])
    # a periodic cell whose shortest O–O contact is across the boundary (0.8 + 0.4 = 1.2 Å; 3.8 inside)
    cell = Atoms("O2", positions=[[0.8, 1.0, 1.0], [4.6, 1.0, 1.0]], cell=[5.0, 6.0, 6.0], pbc=True)
    graphs = [atoms_to_graph(a, CUTOFF) for a in (stretched, water, cell)]
    radii = contact_radii(graphs, [1, 8])
    assert radii[0, 1] == radii[1, 0] == pytest.approx(np.linalg.norm(water.positions[1] - water.positions[0]))
    assert radii[0, 0] == pytest.approx(np.linalg.norm(water.positions[2] - water.positions[1]), abs=1e-3)
    assert radii[1, 1] == pytest.approx(1.2)
    # a pair the data never brings within the cutoff: half the sum of covalent radii (C–N 0.73 Å)
    far = Atoms("CN", positions=[[0, 0, 0], [0, 0, 6.0]])
    assert contact_radii([atoms_to_graph(far, CUTOFF)], [6, 7])[0, 1] == pytest.approx(0.5 * (0.76 + 0.71))


def _fitted_model(frames):
    torch.manual_seed(0)
    model = build_potential(ModelConfig(n_atom_basis=16, n_filters=16, n_interactions=2, n_rbf=8,
                                        cutoff=CUTOFF), [1, 6, 8]).double()
    fitted = fit_statistics(model, [atoms_to_graph(a, CUTOFF) for a in frames])
    return model, fitted


def _energy_and_forces(model, atoms):
    out = model(atoms_to_batch(atoms, CUTOFF, torch.float64, labels=False), compute_forces=True)
    return float(out[K.ENERGY][0]), out[K.FORCES].detach().numpy()


def test_fitted_wall_leaves_the_training_data_untouched_and_stops_a_squeeze():
    frames = []
    for seed in range(5):
        atoms = molecule("CH3CH2OH")
        atoms.rattle(0.05, seed=seed)
        frames.append(_labelled(atoms, -float(seed)))
    model, fitted = _fitted_model(frames)
    assert fitted["repulsion"]["strength_eV"] == 100.0 and 0.9 < fitted["repulsion"]["radii_A"]["H-O"] < 1.0
    without = build_potential(ModelConfig(n_atom_basis=16, n_filters=16, n_interactions=2, n_rbf=8,
                                          cutoff=CUTOFF, repulsion=0.0), [1, 6, 8]).double()
    without.load_state_dict(model.state_dict())
    without.repulsion.strength.zero_()
    for atoms in frames:                          # zero on every training structure
        e, f = _energy_and_forces(model, atoms)
        e0, f0 = _energy_and_forces(without, atoms)
        assert e == e0 and np.array_equal(f, f0)
    for factor, at_least in ((0.8, 0.3), (0.6, 5.0)):   # every bond 20 % / 40 % shorter than in the data
        squeezed = frames[0].copy()
        squeezed.positions *= factor
        e, f = _energy_and_forces(model, squeezed)
        e0, f0 = _energy_and_forces(without, squeezed)
        assert e - e0 > at_least                  # eV: the wall holds
        outward = ((f - f0) * (squeezed.positions - squeezed.positions.mean(0))).sum()
        assert outward > 0                        # and its forces push the atoms apart


def test_checkpoints_from_before_the_wall_load_without_it():
    frames = [_labelled(molecule("H2O"))]
    torch.manual_seed(0)
    model = build_potential(ModelConfig(n_atom_basis=8, n_filters=8, n_interactions=1, n_rbf=4, cutoff=CUTOFF),
                            [1, 8]).double()
    fit_statistics(model, [atoms_to_graph(a, CUTOFF) for a in frames])
    old = {k: v for k, v in model.state_dict().items() if not k.startswith("repulsion.")}
    fresh = build_potential(ModelConfig(n_atom_basis=8, n_filters=8, n_interactions=1, n_rbf=4, cutoff=CUTOFF),
                            [1, 8]).double()
    fresh.load_state_dict(old)                    # strict: no missing-key error
    assert float(fresh.repulsion.strength) == 0.0
    squeezed = frames[0].copy()
    squeezed.positions *= 0.7
    model.repulsion.strength.zero_()
    assert _energy_and_forces(fresh, squeezed)[0] == _energy_and_forces(model, squeezed)[0]


def test_a_negative_strength_is_refused():
    with pytest.raises(ValueError, match="model.repulsion"):
        ModelConfig(repulsion=-1.0)


def test_exported_files_describe_their_wall(tmp_path):
    from export_helpers import WALL, WALL_STRENGTH, tiny_potential

    from mlpot.deploy.export import export_model, read_metadata
    from mlpot.deploy.metadata import format_metadata

    export_model(tiny_potential(dipole=False), tmp_path / "m.pt", "float64", kernels="reference")
    metadata = read_metadata(tmp_path / "m.pt")
    assert metadata["repulsion"]["radii_A"]["H-O"] == WALL and metadata["repulsion"]["strength_eV"] == WALL_STRENGTH
    assert "repulsion" in format_metadata(metadata)
