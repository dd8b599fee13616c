"""Vibrational spectra: harmonic normal modes and IR intensities from a Hessian and dipole
derivatives; power and IR spectra from MD autocorrelation functions; PNG plots.

Units: Hessian eV/Å², masses amu, dipoles e·Å, time step fs, wavenumbers cm⁻¹,
IR intensities km/mol or (D/Å)²/amu (as ase.vibrations.Infrared).
"""
from mlpot.spectra.correlation import (Spectrum, autocorrelation, ir_spectrum, power_spectrum,
                                       spectrum_from_autocorrelation, window)
from mlpot.spectra.finite_difference import finite_difference_derivatives
from mlpot.spectra.harmonic import (NormalModes, broaden, eigenvalue_to_wavenumber, ir_intensities,
                                    normal_modes, rigid_body_basis)
from mlpot.spectra.matching import frequency_mae, match_modes

__all__ = ["NormalModes", "Spectrum", "autocorrelation", "broaden", "eigenvalue_to_wavenumber",
           "finite_difference_derivatives", "frequency_mae", "ir_intensities", "ir_spectrum",
           "match_modes", "normal_modes", "power_spectrum", "rigid_body_basis",
           "spectrum_from_autocorrelation", "window"]
