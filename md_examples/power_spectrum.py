"""Vibrational power spectrum (and IR spectrum) from molecular dynamics with an mlpot model.

    python md_examples/power_spectrum.py                 # ethanol, 300 K, 2 ps, model from `mlpot demo`
    python md_examples/power_spectrum.py --model model.pt --structure start.xyz --steps 8000

Runs Langevin MD with weak friction (so the thermostat barely broadens the lines), records
velocities and (if the model predicts it) the dipole every step, and computes
  * the power spectrum: Fourier transform of the mass-weighted velocity autocorrelation,
  * the IR spectrum: Fourier transform of the autocorrelation of dμ/dt,
both with a Hann window and zero padding (mlpot.spectra). Writes power_spectrum.png and
power_spectrum.csv (wavenumber cm⁻¹, power, IR) into --out and prints the strongest peaks.
"""
import argparse
import sys
import time

import numpy as np
from ase import units
from ase.constraints import FixCom
from ase.md.langevin import Langevin

from mlpot import MLPotCalculator
from mlpot.sim.md import thermalize
from mlpot.sim.scripting import add_common_arguments, load_structure, prepare_run
from mlpot.spectra import ir_spectrum, power_spectrum
from mlpot.spectra.plots import plot_spectra


def strongest_peaks(spectrum, n=6, low=100.0, high=4000.0):
    """Wavenumbers (cm⁻¹) of the n highest local maxima between `low` and `high`."""
    x, y = spectrum.wavenumbers, spectrum.intensity
    inside = np.nonzero((x[1:-1] > low) & (x[1:-1] < high) & (y[1:-1] > y[:-2]) & (y[1:-1] > y[2:]))[0] + 1
    best = inside[np.argsort(y[inside])[::-1][:n]]
    return np.sort(x[best])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, out="power_spectrum_output", threads=1, device=False)
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--steps", type=int, default=4000, help="MD steps (recorded every step)")
    parser.add_argument("--equilibration", type=int, default=200, help="steps before recording")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs (the spectrum reaches 1/(2 dt))")
    parser.add_argument("--friction", type=float, default=0.001, help="Langevin friction (1/fs)")
    parser.add_argument("--max-lag", type=float, default=None,
                        help="fs of correlation used (default half the run; shorter = smoother)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = prepare_run(args)

    atoms = load_structure(args)
    calc = MLPotCalculator(args.model)
    atoms.calc = calc
    has_dipole = "dipole" in calc.implemented_properties
    rng = np.random.default_rng(args.seed)
    thermalize(atoms, args.temperature, rng)
    atoms.set_constraint(FixCom())
    dyn = Langevin(atoms, timestep=args.timestep * units.fs, temperature_K=args.temperature,
                   friction=args.friction / units.fs, fixcm=False, rng=rng)
    started = time.perf_counter()
    dyn.run(args.equilibration)
    velocities, dipoles, temperatures = [], [], []
    for step in range(args.steps):
        dyn.run(1)
        velocities.append(atoms.get_velocities() * units.fs)      # Å/fs
        temperatures.append(atoms.get_temperature())
        if has_dipole:
            dipoles.append(atoms.get_dipole_moment())
        if (step + 1) % max(1, args.steps // 10) == 0:
            print(f"step {step + 1}/{args.steps}  T {np.mean(temperatures[-100:]):.0f} K  "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
    max_lag = None if args.max_lag is None else max(2, int(args.max_lag / args.timestep))
    power = power_spectrum(np.array(velocities), atoms.get_masses(), args.timestep, max_lag=max_lag)
    spectra = {"power spectrum (VACF)": power}
    columns = [power.wavenumbers, power.intensity]
    if has_dipole:
        ir = ir_spectrum(np.array(dipoles), args.timestep, max_lag=max_lag)
        spectra["IR (dipole autocorrelation)"] = ir
        columns.append(ir.intensity)
    print(f"{args.steps} steps at {np.mean(temperatures):.0f} K (target {args.temperature:g} K); "
          f"resolution ~{1 / (args.steps * args.timestep / 2) * 33356.4:.0f} cm⁻¹")
    print("strongest power-spectrum peaks (cm⁻¹):", np.array2string(strongest_peaks(power), precision=0))
    top = min(4000.0, float(power.wavenumbers[-1]))
    png = plot_spectra(out / "power_spectrum.png", spectra, xlim=(0.0, top),
                       title=f"{atoms.get_chemical_formula()} at {args.temperature:g} K, "
                             f"{args.steps * args.timestep / 1000:g} ps")
    header = "wavenumber_cm-1,power" + (",ir" if has_dipole else "")
    np.savetxt(out / "power_spectrum.csv", np.column_stack(columns), delimiter=",", header=header,
               comments="")
    print(f"wrote {png} and {out / 'power_spectrum.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
