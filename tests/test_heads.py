"""Output heads: per-element networks, dipoles from latent charges, model building."""
import numpy as np
import pytest
import torch
from ase.build import molecule

from mlpot import keys as K
from mlpot.data import atoms_to_batch
from mlpot.model.heads import DipoleMoment, ElementalAtomwise, ElementalDipoleMoment, aggregate
from mlpot.model.config import ModelConfig, build_potential


def test_elemental_atomwise_uses_one_network_per_element():
    torch.manual_seed(0)
    head = ElementalAtomwise(4, [8, 1, 6], n_out=2)
    x = torch.randn(5, 4)
    z = torch.tensor([6, 1, 8, 1, 6])
    y = head(x, z)
    for row, zi in enumerate(z.tolist()):
        net = head.nets[[1, 6, 8].index(zi)]
        torch.testing.assert_close(y[row], net(x[row:row + 1])[0])
    torch.testing.assert_close(torch.jit.script(head)(x, z), y)
    with pytest.raises(ValueError, match="Z=7 is not among the model's species"):
        head(x, torch.tensor([6, 1, 7, 1, 6]))


def test_dipole_charges_sum_to_total_and_centre_of_mass():
    torch.manual_seed(1)
    head = DipoleMoment(3).double()
    numbers = torch.tensor([8, 1, 1, 6, 8])
    positions = torch.randn(5, 3, dtype=torch.float64)
    data = {K.ATOMIC_NUMBERS: numbers, K.POSITIONS: positions, K.BATCH: torch.tensor([0, 0, 0, 1, 1]),
            K.N_ATOMS: torch.tensor([3, 2]), K.TOTAL_CHARGE: torch.tensor([0.0, -1.0], dtype=torch.float64)}
    features = torch.randn(5, 3, dtype=torch.float64)
    out = head(data, features)
    q = out[K.CHARGES]
    torch.testing.assert_close(aggregate(q, data[K.BATCH], 2), torch.tensor([0.0, -1.0], dtype=torch.float64))
    # the charged structure's dipole is taken about its centre of mass
    masses = head.masses.double()[numbers[3:]]
    com = (masses[:, None] * positions[3:]).sum(0) / masses.sum()
    torch.testing.assert_close(out[K.DIPOLE][1], (q[3:, None] * (positions[3:] - com)).sum(0))
    torch.testing.assert_close(out[K.DIPOLE][0], (q[:3, None] * positions[:3]).sum(0))
    scripted = torch.jit.script(head)
    torch.testing.assert_close(scripted(data, features)[K.DIPOLE], out[K.DIPOLE])
    no_charge = {k: v for k, v in data.items() if k != K.TOTAL_CHARGE}
    assert abs(float(head(no_charge, features)[K.CHARGES].sum())) < 1e-12


def test_elemental_dipole_uses_elemental_charges():
    head = ElementalDipoleMoment(3, [1, 8])
    assert isinstance(head.charge_net, ElementalAtomwise)
    data = {K.ATOMIC_NUMBERS: torch.tensor([8, 1, 1]), K.POSITIONS: torch.randn(3, 3)}
    out = head(data, torch.randn(3, 3))
    assert out[K.DIPOLE].shape == (1, 3) and abs(float(out[K.CHARGES].sum())) < 1e-6


@pytest.mark.parametrize("representation", ["schnet", "wacsf", "acsf"])
@pytest.mark.parametrize("dipole", [False, True])
def test_build_potential_from_config(representation, dipole):
    cfg = ModelConfig(representation=representation, cutoff=3.0, n_atom_basis=8, n_filters=8,
                      n_interactions=2, n_rbf=6, n_radial=4, n_angular=2, dipole=dipole)
    model = build_potential(cfg, [1, 6, 8])
    elemental = representation != "schnet"
    assert isinstance(model.energy_head, ElementalAtomwise) == elemental
    assert model.n_interactions == (1 if elemental else 2)
    out = torch.jit.script(model)(atoms_to_batch(molecule("CH3OH"), 3.0, labels=False))
    assert out[K.ENERGY].shape == (1,) and out[K.FORCES].shape == (6, 3)
    assert (K.DIPOLE in out) == dipole
    if dipole:
        assert isinstance(model.dipole_head, ElementalDipoleMoment) == elemental


def test_config_rejects_bad_symmetry_function_settings():
    with pytest.raises(ValueError, match="zetas"):
        ModelConfig(representation="wacsf", zetas=[])
    with pytest.raises(ValueError, match="unknown representation"):
        ModelConfig(representation="soap")
    with pytest.raises(ValueError, match="does not see the geometry"):
        ModelConfig(representation="schnet", n_interactions=0)
    default = ModelConfig(representation="wacsf")
    model = build_potential(default, [1, 6, 7, 8, 9])
    assert model.representation.n_features == 22 + 6 * 4 * 2     # 6 widths x zetas 1, 2, 4, 8 x lambda ±1
    assert np.isclose(model.cutoff, 5.0)
