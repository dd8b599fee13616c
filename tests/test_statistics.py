import numpy as np
import pytest

from mlpot.model.statistics import composition_matrix, energy_scale, fit_atomrefs


def test_atomrefs_recover_linear_energies():
    rng = np.random.default_rng(0)
    species = [1, 6, 8]
    true = {1: -13.6, 6: -1030.0, 8: -2040.0}
    numbers = [rng.choice(species, size=rng.integers(2, 10)) for _ in range(50)]
    energies = np.array([sum(true[z] for z in zs) for zs in numbers])
    fitted = fit_atomrefs(numbers, energies, species)
    for z in species:
        assert fitted[z] == pytest.approx(true[z], abs=1e-6)


def test_collinear_compositions_reproduce_mean_energy():
    numbers = [np.array([6, 6, 1, 1, 1, 1, 1, 1, 8])] * 10  # ethanol only
    energies = np.linspace(-4200.0, -4199.0, 10)
    fitted = fit_atomrefs(numbers, energies, [1, 6, 8])
    predicted = composition_matrix(numbers[:1], [1, 6, 8]) @ np.array([fitted[z] for z in (1, 6, 8)])
    assert predicted[0] == pytest.approx(energies.mean(), abs=1e-8)


def test_unknown_element_and_nan():
    with pytest.raises(ValueError, match="Z=9"):
        composition_matrix([np.array([1, 9])], [1, 6])
    with pytest.raises(ValueError, match="NaN"):
        fit_atomrefs([np.array([1])], np.array([np.nan]), [1])


def test_scale_from_forces():
    assert energy_scale([np.array([1])], np.array([0.0]), {1: 0.0},
                        forces=[np.full((1, 3), 2.0)]) == pytest.approx(2.0)
