"""Molecular dynamics at constant temperature (Langevin thermostat) with an mlpot model.

    python md_examples/md_nvt.py                          # ethanol, 300 K, 1 ps, model from `mlpot demo`
    python md_examples/md_nvt.py --model model.pt --structure start.xyz --temperature 500 --steps 4000

Writes md_nvt.traj (every --interval steps), md_nvt.log (ASE MD log: time, energies, T) and
md_nvt.png (temperature and energies against time) into --out.
"""
import argparse
import sys
import time

import matplotlib
import numpy as np
from ase import units
from ase.md import MDLogger

from mlpot import MLPotCalculator
from mlpot.sim.md import langevin
from mlpot.sim.scripting import add_common_arguments, load_structure, prepare_run

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, out="md_nvt_output", threads=0)
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--steps", type=int, default=2000, help="number of MD steps")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--friction", type=float, default=0.01, help="Langevin friction (1/fs)")
    parser.add_argument("--interval", type=int, default=10, help="write and log every this many steps")
    parser.add_argument("--seed", type=int, default=0, help="random seed (velocities, thermostat)")
    args = parser.parse_args(argv)
    out = prepare_run(args)

    # centre of mass fixed, momenta at the temperature, the Langevin thermostat (mlpot.sim.md)
    atoms, dynamics = langevin(load_structure(args), MLPotCalculator(args.model, device=args.device),
                               args.temperature, args.timestep, args.friction, np.random.default_rng(args.seed),
                               trajectory=str(out / "md_nvt.traj"), loginterval=args.interval)
    dynamics.attach(MDLogger(dynamics, atoms, str(out / "md_nvt.log"), mode="w"), interval=args.interval)
    rows = []  # time (fs), temperature (K), potential, total energy (eV)

    def record():
        rows.append((dynamics.get_time() / units.fs, atoms.get_temperature(),
                     atoms.get_potential_energy(), atoms.get_total_energy()))

    dynamics.attach(record, interval=args.interval)
    print(f"Langevin MD of {atoms.get_chemical_formula()} ({len(atoms)} atoms) at {args.temperature:g} K: "
          f"{args.steps} steps of {args.timestep:g} fs, friction {args.friction:g}/fs, model {args.model}")
    start = time.perf_counter()
    dynamics.run(args.steps)
    elapsed = time.perf_counter() - start
    t, temperature, potential, total = np.array(rows).T
    settled = temperature[len(temperature) // 2:]
    print(f"{args.steps} steps ({args.steps * args.timestep / 1000:g} ps) in {elapsed:.1f} s "
          f"({1000 * elapsed / max(args.steps, 1):.2f} ms/step)")
    print(f"temperature over the second half: {settled.mean():.1f} ± {settled.std():.1f} K "
          f"(target {args.temperature:g} K)")
    print(f"potential energy: start {potential[0]:.4f} eV, end {potential[-1]:.4f} eV")

    fig, (ax_t, ax_e) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    ax_t.plot(t, temperature)
    ax_t.axhline(args.temperature, color="k", ls="--", lw=0.8)
    ax_t.set_ylabel("T (K)")
    ax_e.plot(t, potential - potential[0], label="potential")
    ax_e.plot(t, total - total[0], label="total")
    ax_e.set_xlabel("time (fs)")
    ax_e.set_ylabel("E − E(0) (eV)")
    ax_e.legend()
    ax_t.set_title(f"{atoms.get_chemical_formula()}: Langevin MD at {args.temperature:g} K")
    fig.tight_layout()
    fig.savefig(out / "md_nvt.png", dpi=120)
    print(f"wrote {out / 'md_nvt.traj'}, {out / 'md_nvt.log'}, {out / 'md_nvt.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
