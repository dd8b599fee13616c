"""Spectra from molecular dynamics: time autocorrelation functions and their Fourier
transforms with windowing and zero padding.

Pure functions on numpy arrays. Time step `dt` in fs; wavenumbers in cm⁻¹. The
intensities are in arbitrary units (the shape of the spectrum is what is compared).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlpot.spectra.units import PER_FS_TO_CM1

WINDOWS = ("hann", "none")


@dataclass
class Spectrum:
    """wavenumbers [K] cm⁻¹ and intensity [K] (arbitrary units)."""
    wavenumbers: np.ndarray
    intensity: np.ndarray

    def peak(self, low: float = 0.0, high: float = np.inf) -> float:
        """Wavenumber (cm⁻¹) of the highest point between low and high."""
        mask = (self.wavenumbers >= low) & (self.wavenumbers <= high)
        if not mask.any():
            raise ValueError(f"no points between {low} and {high} cm⁻¹")
        return float(self.wavenumbers[mask][np.argmax(self.intensity[mask])])


def autocorrelation(signal, max_lag: int | None = None) -> np.ndarray:
    """C(τ) = ⟨x(t)·x(t+τ)⟩ averaged over time origins t and summed over all other axes.

    signal: [T, ...]; returns [max_lag] (default T // 2) for lags 0 .. max_lag-1, computed
    with an FFT zero-padded to avoid wrap-around, divided by the T-τ pairs per lag.
    """
    x = np.asarray(signal, dtype=float)
    if x.ndim == 0 or x.shape[0] < 2:
        raise ValueError("need a time series of at least 2 frames, shape [T, ...]")
    if not np.all(np.isfinite(x)):
        raise ValueError("the time series contains NaN or inf (did the MD blow up?)")
    n = x.shape[0]
    max_lag = n // 2 if max_lag is None else int(max_lag)
    if not 1 <= max_lag <= n:
        raise ValueError(f"max_lag must be between 1 and the number of frames {n}, got {max_lag}")
    x = x.reshape(n, -1)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(x, n=size, axis=0)
    acf = np.fft.irfft((f * f.conj()).real.sum(1), n=size)[:max_lag]
    return acf / (n - np.arange(max_lag))


def window(name: str, n: int) -> np.ndarray:
    """One-sided window over lags 0..n-1, 1 at lag 0 and falling to 0: the right half of a
    Hann window ("hann") or all ones ("none")."""
    if name == "hann":
        return np.cos(0.5 * np.pi * np.arange(n) / n) ** 2
    if name == "none":
        return np.ones(n)
    raise ValueError(f"unknown window {name!r}; use one of {WINDOWS}")


def spectrum_from_autocorrelation(acf, dt: float, window_name: str = "hann",
                                  zero_pad: int = 4) -> Spectrum:
    """Cosine transform of an autocorrelation function C(τ) [L] sampled every dt fs.

    The one-sided C(τ) is multiplied by the window, extended as an even function and
    zero-padded to `zero_pad` times its length (a finer frequency grid, not more
    resolution). Returns intensities at wavenumbers 0 .. 1/(2 dt) in cm⁻¹.
    """
    c = np.asarray(acf, dtype=float)
    if not dt > 0:
        raise ValueError(f"time step must be positive (fs), got {dt}")
    if zero_pad < 1:
        raise ValueError(f"zero_pad must be an integer >= 1, got {zero_pad}")
    c = c * window(window_name, len(c))
    size = int(zero_pad) * 2 * len(c)
    even = np.zeros(size)
    even[:len(c)] = c
    even[size - len(c) + 1:] = c[:0:-1]
    intensity = np.fft.rfft(even).real * dt
    wavenumbers = np.fft.rfftfreq(size, d=dt) * PER_FS_TO_CM1
    return Spectrum(wavenumbers, intensity)


def power_spectrum(velocities, masses, dt: float, max_lag: int | None = None,
                   window_name: str = "hann", zero_pad: int = 4) -> Spectrum:
    """Vibrational density of states from the mass-weighted velocity autocorrelation
    Σ_i m_i ⟨v_i(0)·v_i(τ)⟩ of an MD trajectory.

    velocities: [T, N, 3] (any unit; only the shape of the spectrum matters) sampled every
    dt fs; masses: [N] amu. Peaks sit at the vibrational wavenumbers (cm⁻¹).
    """
    v = np.asarray(velocities, dtype=float)
    m = np.asarray(masses, dtype=float)
    if v.ndim != 3 or v.shape[2] != 3 or v.shape[1] != len(m):
        raise ValueError(f"velocities must be [T, N, 3] with N = {len(m)} masses, got {v.shape}")
    weighted = v * np.sqrt(m)[None, :, None]
    return spectrum_from_autocorrelation(autocorrelation(weighted, max_lag), dt, window_name, zero_pad)


def ir_spectrum(dipoles, dt: float, max_lag: int | None = None, window_name: str = "hann",
                zero_pad: int = 4) -> Spectrum:
    """IR absorption (classical, arbitrary units) from the autocorrelation of the time
    derivative of the dipole moment, ⟨μ̇(0)·μ̇(τ)⟩ (equal to ω² times the transform of
    ⟨μ(0)·μ(τ)⟩, without its noise at low frequency).

    dipoles: [T, 3] e·Å sampled every dt fs.
    """
    mu = np.asarray(dipoles, dtype=float)
    if mu.ndim != 2 or mu.shape[1] != 3:
        raise ValueError(f"dipoles must be [T, 3] (e·Å), got shape {mu.shape}")
    if mu.shape[0] < 3:
        raise ValueError("need at least 3 dipole frames")
    dmu = np.gradient(mu, dt, axis=0)
    return spectrum_from_autocorrelation(autocorrelation(dmu, max_lag), dt, window_name, zero_pad)
