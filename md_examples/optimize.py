"""Geometry optimisation (BFGS) with an mlpot model.

    python md_examples/optimize.py                       # ethanol, model from `mlpot demo`
    python md_examples/optimize.py --model model.pt --structure start.xyz --fmax 0.01

Prints the energy per step and the final structure; writes optimized.xyz, optimize.traj,
optimize.log and optimize_energy.png into --out.
"""
import argparse
import sys
import time

import matplotlib
import numpy as np
from ase.io import write
from ase.optimize import BFGS

from mlpot import MLPotCalculator
from mlpot.sim.scripting import add_common_arguments, load_structure, prepare_run

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, out="optimize_output", threads=0)
    parser.add_argument("--fmax", type=float, default=0.01, help="stop when all forces are below this (eV/Å)")
    parser.add_argument("--steps", type=int, default=500, help="at most this many BFGS steps")
    parser.add_argument("--rattle", type=float, default=0.05, help="random displacement of the start (Å)")
    args = parser.parse_args(argv)
    out = prepare_run(args)

    atoms = load_structure(args)
    atoms.rattle(args.rattle, seed=0)
    atoms.calc = MLPotCalculator(args.model, device=args.device)
    energies = []
    optimizer = BFGS(atoms, trajectory=str(out / "optimize.traj"), logfile=str(out / "optimize.log"))
    optimizer.attach(lambda: energies.append(atoms.get_potential_energy()))
    start = time.perf_counter()
    converged = optimizer.run(fmax=args.fmax, steps=args.steps)
    elapsed = time.perf_counter() - start
    fmax = np.linalg.norm(atoms.get_forces(), axis=1).max()

    print(f"BFGS on {atoms.get_chemical_formula()} ({len(atoms)} atoms) with {args.model}")
    for step, energy in enumerate(energies):
        print(f"  step {step:4d}  E = {energy:.6f} eV")
    print(f"{'converged' if converged else 'NOT converged'} after {len(energies) - 1} steps in {elapsed:.1f} s: "
          f"E = {energies[-1]:.6f} eV ({energies[-1] - energies[0]:+.6f} eV from the start), "
          f"max force {fmax:.4f} eV/Å (target {args.fmax})")
    print("final structure (Å):")
    for symbol, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.positions):
        print(f"  {symbol:2s} {x:12.6f} {y:12.6f} {z:12.6f}")
    write(out / "optimized.xyz", atoms)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(np.arange(len(energies)), np.array(energies) - energies[-1], "o-", ms=3)
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_xlabel("BFGS step")
    ax.set_ylabel("E − E_final (eV)")
    ax.set_title(f"{atoms.get_chemical_formula()}: geometry optimisation")
    fig.tight_layout()
    fig.savefig(out / "optimize_energy.png", dpi=120)
    print(f"wrote {out / 'optimized.xyz'}, {out / 'optimize.traj'}, {out / 'optimize.log'}, "
          f"{out / 'optimize_energy.png'}")
    return 0 if converged else 1


if __name__ == "__main__":
    sys.exit(main())
