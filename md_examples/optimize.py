"""Geometry optimisation (BFGS) with an mlpot model.

    python md_examples/optimize.py                       # ethanol, model from `mlpot demo`
    python md_examples/optimize.py --model model.pt --structure start.xyz --fmax 0.01

Prints the energy per step and the final structure; writes optimized.xyz, optimize.traj,
optimize.log and optimize_energy.png into --out.
"""
import argparse
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
from ase.build import molecule
from ase.io import read, write
from ase.optimize import BFGS

from mlpot import MLPotCalculator

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ALIASES = {"ethanol": "CH3CH2OH", "methanol": "CH3OH", "water": "H2O"}


def load_structure(args):
    if args.structure:
        return read(args.structure)
    try:
        return molecule(ALIASES.get(args.molecule, args.molecule))
    except KeyError:
        sys.exit(f"{args.molecule!r} is not a molecule ase.build.molecule knows; pass --structure FILE")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo_output/model.pt", help="exported model file (mlpot export)")
    parser.add_argument("--molecule", default="ethanol", help="name for ase.build.molecule (default ethanol)")
    parser.add_argument("--structure", help="start from this file instead (any format ASE reads)")
    parser.add_argument("--fmax", type=float, default=0.01, help="stop when all forces are below this (eV/Å)")
    parser.add_argument("--steps", type=int, default=500, help="at most this many BFGS steps")
    parser.add_argument("--rattle", type=float, default=0.05, help="random displacement of the start (Å)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default="optimize_output", help="output folder")
    args = parser.parse_args(argv)
    if not Path(args.model).is_file():
        sys.exit(f"model file {args.model} not found; run `mlpot demo` first or pass --model PATH")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

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
