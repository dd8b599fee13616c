"""Molecular dynamics at constant energy (velocity Verlet) with an mlpot model: a check that the
model conserves energy. Export the model in float64 (`mlpot export --dtype float64`) for the
cleanest numbers; float32 shows round-off noise of ~1e-4 eV.

    python md_examples/md_nve.py                          # ethanol, 300 K start, 1 ps, model from `mlpot demo`
    python md_examples/md_nve.py --model model.pt --structure start.xyz --timestep 0.25

Prints the energy drift per atom and per ps; writes md_nve.traj, md_nve.log and md_nve.png
(total, potential and kinetic energy against time) into --out.
"""
import argparse
import sys
import time

import matplotlib
import numpy as np
from ase import units
from ase.md import MDLogger
from ase.md.verlet import VelocityVerlet

from mlpot import MLPotCalculator
from mlpot.sim.md import thermalize
from mlpot.sim.scripting import add_common_arguments, load_structure, prepare_run

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, out="md_nve_output", threads=0)
    parser.add_argument("--temperature", type=float, default=300.0, help="initial temperature (K)")
    parser.add_argument("--steps", type=int, default=2000, help="number of MD steps")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--interval", type=int, default=10, help="write and log every this many steps")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the initial velocities")
    args = parser.parse_args(argv)
    out = prepare_run(args)

    atoms = load_structure(args)
    atoms.calc = MLPotCalculator(args.model, device=args.device)
    thermalize(atoms, args.temperature, np.random.default_rng(args.seed))
    dynamics = VelocityVerlet(atoms, timestep=args.timestep * units.fs, trajectory=str(out / "md_nve.traj"),
                              loginterval=args.interval)
    dynamics.attach(MDLogger(dynamics, atoms, str(out / "md_nve.log"), mode="w"), interval=args.interval)
    rows = []  # time (fs), potential, kinetic, total energy (eV)

    def record():
        potential, kinetic = atoms.get_potential_energy(), atoms.get_kinetic_energy()
        rows.append((dynamics.get_time() / units.fs, potential, kinetic, potential + kinetic))

    dynamics.attach(record, interval=args.interval)
    print(f"velocity Verlet MD of {atoms.get_chemical_formula()} ({len(atoms)} atoms) from {args.temperature:g} K: "
          f"{args.steps} steps of {args.timestep:g} fs, model {args.model} ({atoms.calc.metadata['dtype']})")
    start = time.perf_counter()
    dynamics.run(args.steps)
    elapsed = time.perf_counter() - start
    t, potential, kinetic, total = np.array(rows).T
    n = len(atoms)
    slope = np.polyfit(t / 1000.0, total, 1)[0] if len(t) > 1 else 0.0  # eV/ps
    print(f"{args.steps} steps ({args.steps * args.timestep / 1000:g} ps) in {elapsed:.1f} s "
          f"({1000 * elapsed / max(args.steps, 1):.2f} ms/step)")
    print(f"total energy: start {total[0]:.6f} eV, end {total[-1]:.6f} eV, "
          f"largest deviation {np.abs(total - total[0]).max() / n:.2e} eV/atom")
    print(f"energy drift (linear fit): {slope / n:+.2e} eV/atom/ps")
    print(f"kinetic energy fluctuates by {kinetic.std():.4f} eV, so the drift is "
          f"{abs(slope) * t[-1] / 1000.0 / max(kinetic.std(), 1e-12):.1e} of it over the run")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(t, total - total[0], label="total", lw=2)
    ax.plot(t, potential - total[0], label="potential")
    ax.plot(t, kinetic, label="kinetic")
    ax.set_xlabel("time (fs)")
    ax.set_ylabel("energy − E_total(0) (eV)")
    ax.set_title(f"{atoms.get_chemical_formula()}: NVE, drift {slope / n:+.1e} eV/atom/ps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "md_nve.png", dpi=120)
    print(f"wrote {out / 'md_nve.traj'}, {out / 'md_nve.log'}, {out / 'md_nve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
