"""PNG plots of vibrational spectra (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mlpot.spectra.harmonic import broaden


def _pyplot():
    # lazy: matplotlib is slow to import (~0.8 s with pyplot), and the Agg backend is set before pyplot
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_stick_spectra(path, spectra: dict, width: float = 20.0, xlim=(0.0, 4000.0),
                       ylabel: str = "IR intensity (km/mol)", title: str | None = None) -> Path:
    """Stick spectra and their Lorentzian broadening (FWHM `width` cm⁻¹), one panel each.

    spectra: {label: (frequencies [M] cm⁻¹, intensities [M])}. Returns the PNG path.
    """
    plt = _pyplot()
    grid = np.linspace(xlim[0], xlim[1], 4000)
    fig, axes = plt.subplots(len(spectra), 1, figsize=(7, 2.4 * len(spectra) + 0.6),
                             sharex=True, squeeze=False)
    for ax, (label, (freqs, ints)), color in zip(axes[:, 0], spectra.items(), ("C0", "C3", "C2", "C1")):
        freqs = np.asarray(freqs, dtype=float)
        ints = np.asarray(ints, dtype=float)
        ax.vlines(freqs, 0, ints, color=color, lw=1.2, label=f"{label} (sticks)")
        curve = broaden(freqs, ints, grid, width)
        peak = curve.max() if curve.max() > 0 else 1.0
        top = ints.max() if len(ints) and ints.max() > 0 else 1.0
        ax.plot(grid, curve / peak * top, color=color, alpha=0.5, lw=1,
                label=f"broadened, FWHM {width:g} cm⁻¹ (scaled)")
        ax.set_ylabel(ylabel)
        ax.set_xlim(*xlim)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", fontsize=8)
    axes[-1, 0].set_xlabel("wavenumber (cm⁻¹)")
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_spectra(path, spectra: dict, xlim=(0.0, 4000.0), ylabel: str = "intensity (normalised)",
                 title: str | None = None, sticks: dict | None = None) -> Path:
    """Continuous spectra on one axis, each normalised to its maximum within xlim, with
    optional stick positions drawn as dashed lines.

    spectra: {label: Spectrum or (wavenumbers, intensity)}; sticks: {label: frequencies}.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for k, (label, spectrum) in enumerate(spectra.items()):
        x, y = (spectrum.wavenumbers, spectrum.intensity) if hasattr(spectrum, "wavenumbers") else spectrum
        x, y = np.asarray(x), np.asarray(y)
        inside = (x >= xlim[0]) & (x <= xlim[1])
        top = np.abs(y[inside]).max() if inside.any() else 1.0
        ax.plot(x, y / (top or 1.0), lw=1.2, label=label, color=f"C{k}")
    for k, (label, freqs) in enumerate((sticks or {}).items()):
        for j, f in enumerate(np.asarray(freqs, dtype=float)):
            ax.axvline(f, color=f"C{k + len(spectra)}", ls="--", lw=0.7,
                       label=label if j == 0 else None)
    ax.set_xlim(*xlim)
    ax.set_xlabel("wavenumber (cm⁻¹)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_frequency_parity(path, reference, predicted, labels=("reference", "model")) -> Path:
    """Predicted against reference harmonic frequencies (cm⁻¹) with the diagonal."""
    plt = _pyplot()
    ref, pred = np.asarray(reference, dtype=float), np.asarray(predicted, dtype=float)
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    hi = max(ref.max(), pred.max()) * 1.05 if len(ref) else 1.0
    lo = min(0.0, ref.min(), pred.min()) if len(ref) else 0.0
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=0.8)
    ax.scatter(ref, pred, s=14)
    ax.set_xlabel(f"{labels[0]} frequency (cm⁻¹)")
    ax.set_ylabel(f"{labels[1]} frequency (cm⁻¹)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path) -> Path:
    import matplotlib.pyplot as plt  # lazy: see _pyplot
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
