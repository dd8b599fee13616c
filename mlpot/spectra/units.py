"""Unit constants for vibrational spectroscopy (CODATA values as in ase.units)."""
import math

from ase import units

#: sqrt(eigenvalue in eV/(Å²·amu)) -> wavenumber in cm⁻¹  (≈ 521.47)
EV_A2_AMU_TO_CM1 = math.sqrt(units._e / units._amu) * 1e10 / (2 * math.pi * units._c * 100)

#: frequency in 1/fs -> wavenumber in cm⁻¹  (≈ 33356.4)
PER_FS_TO_CM1 = 1e15 / (units._c * 100)

#: one Debye in e·Å (≈ 0.20819)
DEBYE = units.Debye

#: integrated IR absorption: (D/Å)²/amu -> km/mol, N_A / (12 ε0 c²) in SI (≈ 42.256;
#: ASE's Infrared uses 42.255 from Porezag and Pederson, PRB 54, 7830 (1996))
_DEBYE_SI = DEBYE * units._e * 1e-10  # C·m
D2A2AMU_TO_KM_PER_MOL = (units._Nav / (12 * units._eps0 * units._c ** 2)
                         * (_DEBYE_SI / 1e-10) ** 2 / units._amu / 1e3)
