"""mlpot.spectra: harmonic frequencies, IR intensities (against ASE), MD spectra."""
import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes

from mlpot.spectra import (autocorrelation, broaden, finite_difference_derivatives, frequency_mae,
                           ir_intensities, ir_spectrum, match_modes, normal_modes, power_spectrum,
                           spectrum_from_autocorrelation)
from mlpot.spectra.units import EV_A2_AMU_TO_CM1


class SpringsWithCharges(Calculator):
    """Harmonic springs between all atom pairs (rest lengths = the starting geometry, so that
    geometry is a minimum) and fixed point charges for the dipole μ = Σ q_i r_i (e·Å)."""
    implemented_properties = ["energy", "forces", "dipole"]

    def __init__(self, reference: Atoms, k: float, charges):
        super().__init__()
        self.k = k
        self.charges = np.asarray(charges, dtype=float)
        self.rest = reference.get_all_distances()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        r = self.atoms.positions
        vec = r[None, :, :] - r[:, None, :]                     # r_j - r_i
        dist = np.linalg.norm(vec, axis=2) + np.eye(len(r))
        stretch = (dist - self.rest) * (1 - np.eye(len(r)))
        energy = 0.25 * self.k * (stretch ** 2).sum()
        forces = (self.k * stretch / dist)[:, :, None] * vec
        self.results = {"energy": energy, "forces": forces.sum(1),
                        "dipole": (self.charges[:, None] * r).sum(0)}


def toy_water():
    atoms = molecule("H2O")
    atoms.calc = SpringsWithCharges(atoms, k=30.0, charges=[-0.8, 0.4, 0.4])
    return atoms


def test_diatomic_frequency_is_analytic():
    k, m1, m2 = 35.0, 12.0, 16.0                    # eV/Å², amu
    u = np.array([0.0, 0.0, 1.0])                   # bond along z
    block = k * np.outer(u, u)
    hessian = np.block([[block, -block], [-block, block]])
    positions = np.array([[0, 0, 0], [0, 0, 1.13]])
    modes = normal_modes(hessian, [m1, m2], positions)
    expected = np.sqrt(k / (m1 * m2 / (m1 + m2))) * EV_A2_AMU_TO_CM1
    assert modes.frequencies.shape == (1,)          # 3N - 5 for a linear molecule
    assert modes.frequencies[0] == pytest.approx(expected, rel=1e-10)
    everything = normal_modes(hessian, [m1, m2], project="none")
    assert np.sum(np.abs(everything.frequencies) > 1.0) == 1
    assert everything.frequencies.max() == pytest.approx(expected, rel=1e-10)


def test_frequencies_match_ase_vibrations(tmp_path):
    from ase.vibrations import Vibrations
    atoms = toy_water()
    hessian, _ = finite_difference_derivatives(atoms, delta=0.005)
    modes = normal_modes(hessian, atoms.get_masses(), atoms.positions)
    vib = Vibrations(atoms, delta=0.005, name=str(tmp_path / "vib"))
    vib.run()
    ase_freqs = vib.get_frequencies().real
    assert len(modes.frequencies) == 3
    np.testing.assert_allclose(modes.frequencies, np.sort(ase_freqs)[-3:], rtol=1e-4)
    np.testing.assert_allclose(hessian, vib.get_vibrations().get_hessian_2d(), atol=1e-5)
    # modes are orthonormal in mass-weighted space and orthogonal to rigid motions
    e = modes.mass_weighted.reshape(3, -1)
    np.testing.assert_allclose(e @ e.T, np.eye(3), atol=1e-10)
    translation = np.repeat(np.sqrt(atoms.get_masses()), 3) * np.tile([1.0, 0, 0], 3)
    np.testing.assert_allclose(e @ translation, 0, atol=1e-10)


def test_ir_intensities_match_ase_infrared(tmp_path):
    from ase.vibrations import Infrared
    atoms = toy_water()
    hessian, dmu = finite_difference_derivatives(atoms, delta=0.005)
    np.testing.assert_allclose(dmu.reshape(3, 3, 3), np.einsum("a,ik->aik", [-0.8, 0.4, 0.4], np.eye(3)),
                               atol=1e-10)       # dμ_k/dr_ai = q_a δ_ik for fixed charges
    modes = normal_modes(hessian, atoms.get_masses(), atoms.positions)
    ir = Infrared(atoms, delta=0.005, name=str(tmp_path / "ir"))
    ir.run()
    ir.read()
    order = np.argsort(ir.get_frequencies().real)[-3:]
    ase_d2 = ir.intensities[order]
    np.testing.assert_allclose(ir_intensities(dmu, modes, unit="(D/A)2/amu"), ase_d2, rtol=1e-4)
    np.testing.assert_allclose(ir_intensities(dmu, modes), ase_d2 * 42.255, rtol=1e-4)
    assert ir_intensities(dmu, modes).min() > 1.0      # all three modes are IR active here


def test_power_spectrum_peaks_at_the_signal_wavenumber():
    dt, n = 0.5, 4000                                    # fs
    t = np.arange(n) * dt
    nu = 1500.0                                          # cm⁻¹
    omega = 2 * np.pi * nu * 2.99792458e-5               # rad/fs
    v = np.zeros((n, 2, 3))
    v[:, 0, 0] = np.cos(omega * t)
    v[:, 1, 2] = 0.3 * np.sin(2 * omega * t)
    spectrum = power_spectrum(v, masses=[1.0, 1.0], dt=dt, max_lag=1000)
    assert spectrum.peak() == pytest.approx(nu, abs=10.0)
    assert spectrum.peak(2500, 3500) == pytest.approx(2 * nu, abs=10.0)
    assert spectrum.wavenumbers[-1] == pytest.approx(1 / (2 * dt) * 33356.41, rel=1e-4)


def test_ir_spectrum_sees_only_the_dipole():
    dt, n = 1.0, 3000
    t = np.arange(n) * dt
    omega = 2 * np.pi * 1000.0 * 2.99792458e-5
    mu = np.zeros((n, 3))
    mu[:, 1] = 0.1 * np.cos(omega * t) + 0.5            # constant part does not show
    spectrum = ir_spectrum(mu, dt)
    assert spectrum.peak(100) == pytest.approx(1000.0, abs=12.0)


def test_autocorrelation_matches_direct_average():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2, 3))
    acf = autocorrelation(x, max_lag=10)
    flat = x.reshape(50, -1)
    direct = [np.mean(np.sum(flat[:50 - tau] * flat[tau:], axis=1)) for tau in range(10)]
    np.testing.assert_allclose(acf, direct, rtol=1e-10)


def test_zero_padding_refines_the_grid_and_windowing_suppresses_ringing():
    acf = np.cos(np.linspace(0, 40 * np.pi, 400))
    coarse = spectrum_from_autocorrelation(acf, dt=1.0, zero_pad=1)
    fine = spectrum_from_autocorrelation(acf, dt=1.0, zero_pad=4)
    assert len(fine.wavenumbers) > 3 * len(coarse.wavenumbers)
    bare = spectrum_from_autocorrelation(acf, dt=1.0, window_name="none", zero_pad=4)
    far = fine.wavenumbers > 2 * fine.peak()
    assert np.abs(fine.intensity[far]).max() < np.abs(bare.intensity[far]).max()


def test_broadening_preserves_area():
    grid = np.linspace(0, 4000, 40001)
    curve = broaden([1000.0, 2500.0], [3.0, 5.0], grid, width=10.0, shape="gaussian")
    assert np.trapezoid(curve, grid) == pytest.approx(8.0, rel=1e-6)
    lorentz = broaden([1000.0], [1.0], grid, width=10.0)
    assert lorentz.max() == pytest.approx(2 / (np.pi * 10.0), rel=1e-3)


def test_mode_matching_by_order_and_overlap():
    atoms = toy_water()
    hessian, _ = finite_difference_derivatives(atoms, delta=0.005)
    modes = normal_modes(hessian, atoms.get_masses(), atoms.positions)
    stiffer = normal_modes(hessian * 1.21, atoms.get_masses(), atoms.positions)
    np.testing.assert_array_equal(match_modes(modes, stiffer, "overlap"), [0, 1, 2])
    assert frequency_mae(modes, stiffer) == pytest.approx(0.1 * np.mean(modes.frequencies), rel=1e-8)


def test_bad_input_is_reported():
    with pytest.raises(ValueError, match="expected"):
        normal_modes(np.zeros((5, 5)), [1.0, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        normal_modes(np.full((6, 6), np.nan), [1.0, 1.0])
    with pytest.raises(ValueError, match="positions"):
        normal_modes(np.zeros((6, 6)), [1.0, 1.0], project="molecule")
    with pytest.raises(ValueError, match="velocities"):
        power_spectrum(np.zeros((10, 3)), [1.0], dt=1.0)
    with pytest.raises(ValueError, match="NaN"):
        autocorrelation(np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="window"):
        spectrum_from_autocorrelation(np.ones(4), dt=1.0, window_name="boxcar")
