"""Harmonic vibrations and IR intensities with an mlpot model, checked against ASE.

    python md_examples/vibrations.py                    # ethanol, model from `mlpot demo`
    python md_examples/vibrations.py --model model.pt --structure start.xyz --fmax 1e-4

Optimises the structure (BFGS), then compares
  * frequencies from the model's analytic Hessian (MLPotCalculator.get_hessian, autograd)
    with ASE's finite-difference ase.vibrations.Vibrations, and
  * IR intensities (mlpot.spectra: analytic Hessian + dipole derivatives) with ASE's
    ase.vibrations.Infrared (needs a model trained with dipoles).
Prints both tables and writes ir_spectrum.png and vibrations.txt into --out.
Export the model in float64 (`mlpot export --dtype float64`) for clean Hessians.
"""
import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from ase.optimize import BFGS
from ase.vibrations import Infrared, Vibrations

from mlpot import MLPotCalculator
from mlpot.sim.scripting import add_common_arguments, load_structure, prepare_run
from mlpot.spectra import finite_difference_derivatives, ir_intensities, normal_modes
from mlpot.spectra.plots import plot_stick_spectra

ASE_KM_PER_MOL = 42.255  # ASE's (D/Å)²/amu -> km/mol factor


def ase_finite_differences(atoms, out: Path, delta: float, with_dipole: bool):
    """Frequencies (cm⁻¹, vibrational modes only) from ase Vibrations, and IR intensities
    (km/mol) from ase Infrared; fresh caches so that an old run is never reused."""
    n_vib = 3 * len(atoms) - 6
    cache = out / "ase_cache"
    shutil.rmtree(cache, ignore_errors=True)
    vib = Vibrations(atoms, delta=delta, name=str(cache / "vib"))
    vib.run()
    frequencies = np.sort(vib.get_frequencies().real)[-n_vib:]
    intensities = None
    if with_dipole:
        ir = Infrared(atoms, delta=delta, name=str(cache / "ir"))
        ir.run()
        ir.read()
        order = np.argsort(ir.get_frequencies().real)[-n_vib:]
        intensities = ir.intensities[order] * ASE_KM_PER_MOL
    return frequencies, intensities


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, out="vibrations_output", threads=1, device=False)
    parser.add_argument("--fmax", type=float, default=1e-4, help="optimisation threshold (eV/Å)")
    parser.add_argument("--delta", type=float, default=0.005, help="finite-difference step (Å)")
    args = parser.parse_args(argv)
    out = prepare_run(args)

    atoms = load_structure(args)
    if atoms.pbc.any():
        sys.exit("this script is for molecules (pbc all False): it projects out rotations")
    calc = MLPotCalculator(args.model)
    atoms.calc = calc
    if calc.metadata.get("dtype") != "float64":
        print(f"note: {args.model} is {calc.metadata.get('dtype')}; finite differences are noisy in "
              "float32, export with --dtype float64 for this comparison")
    converged = BFGS(atoms, logfile=None).run(fmax=args.fmax, steps=2000)
    print(f"optimised {atoms.get_chemical_formula()}: fmax {np.abs(atoms.get_forces()).max():.1e} eV/Å"
          + ("" if converged else " (NOT converged in 2000 steps)"))

    t0 = time.perf_counter()
    hessian = calc.get_hessian(atoms)
    t_hessian = time.perf_counter() - t0
    modes = normal_modes(hessian, atoms.get_masses(), atoms.positions)
    with_dipole = "dipole" in calc.implemented_properties
    intensities = None
    if with_dipole:
        _, dmu = finite_difference_derivatives(atoms, delta=args.delta)
        intensities = ir_intensities(dmu, modes)
    t0 = time.perf_counter()
    ase_freqs, ase_ints = ase_finite_differences(atoms, out, args.delta, with_dipole)
    t_ase = time.perf_counter() - t0

    header = f"{'mode':>4} {'analytic cm-1':>14} {'ASE FD cm-1':>12} {'diff':>7}"
    if with_dipole:
        header += f" {'mlpot km/mol':>13} {'ASE km/mol':>11}"
    lines = [header]
    for k, (f, g) in enumerate(zip(modes.frequencies, ase_freqs)):
        line = f"{k + 1:4d} {f:14.1f} {g:12.1f} {f - g:7.2f}"
        if with_dipole:
            line += f" {intensities[k]:13.2f} {ase_ints[k]:11.2f}"
        lines.append(line)
    lines.append(f"max |Δν| = {np.abs(modes.frequencies - ase_freqs).max():.3f} cm⁻¹ "
                 f"(analytic Hessian {t_hessian:.2f} s, ASE finite differences {t_ase:.1f} s)")
    if with_dipole:
        lines.append(f"max |ΔI| = {np.abs(intensities - ase_ints).max():.3f} km/mol")
    else:
        lines.append("the model predicts no dipole: no IR intensities (train with model.dipole: true)")
    print("\n".join(lines))
    (out / "vibrations.txt").write_text("\n".join(lines) + "\n")
    if with_dipole:
        top = float(np.ceil(modes.frequencies.max() * 1.1 / 100) * 100)
        png = plot_stick_spectra(out / "ir_spectrum.png",
                                 {"mlpot (analytic Hessian)": (modes.frequencies, intensities),
                                  "ASE Infrared (finite differences)": (ase_freqs, ase_ints)},
                                 xlim=(0, top), title=f"IR spectrum of {atoms.get_chemical_formula()}")
        print(f"wrote {png} and {out / 'vibrations.txt'}")
    else:
        print(f"wrote {out / 'vibrations.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
