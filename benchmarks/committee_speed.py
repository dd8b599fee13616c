"""Cost of a committee against one model, through MLPotCalculator (energy + forces per call,
neighbour list kept by the skin): one model, M members one by one, M members in threads
(parallel_members=2) and M members stacked (mlpot.kernels.stacked), for ethanol and 64-atom
Si, SchNet 64/64/3 and 128/128/3, float32 (tabulated kernels) and float64 (fused). With --pt2,
also the `.pt2` files (mlpot.deploy.pt2; compiled here, ~15 s each): member 0 alone ("pt2_one")
and the M members stacked in one package ("pt2_stacked").

    .venv/bin/python benchmarks/committee_speed.py [--members 4] [--threads 1] [--pt2] [--json out.json]

Prints ms per call (best of 5 repeats) and the ratio to one model.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from ase.build import bulk, molecule

from mlpot import MLPotCalculator
from mlpot.deploy.export import export_model
from mlpot.model.config import ModelConfig, build_potential

SYSTEMS = {"ethanol": lambda: molecule("CH3CH2OH"),
           "si_64": lambda: bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)}


def ms_per_call(calc, atoms, calls: int) -> float:
    atoms = atoms.copy()
    atoms.calc = calc
    best = float("inf")
    for repeat in range(6):
        start = time.perf_counter()
        for k in range(calls):
            atoms.positions[0, 0] += 1e-4 * (-1) ** k     # a new geometry each call, no list rebuild
            atoms.get_forces()
        if repeat:                                         # the first repeat warms up
            best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--json", default=None)
    parser.add_argument("--pt2", action="store_true", help="also .pt2 files: one member, and the committee in one")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for width in (64, 128):
            for dtype in ("float32", "float64"):
                paths, potentials = [], []
                for seed in range(args.members):
                    torch.manual_seed(seed)
                    potential = build_potential(ModelConfig(n_atom_basis=width, n_filters=width, n_interactions=3),
                                                [1, 6, 8, 14]).eval()
                    path = Path(tmp) / f"m_{width}_{dtype}_{seed}.pt"
                    export_model(potential, path, dtype)
                    paths.append(path)
                    potentials.append(potential)
                pt2 = {}
                if args.pt2:
                    from mlpot.deploy.pt2 import export_pt2

                    pt2 = {"pt2_one": Path(tmp) / f"one_{width}_{dtype}.pt2",
                           "pt2_stacked": Path(tmp) / f"committee_{width}_{dtype}.pt2"}
                    export_pt2(potentials[0], pt2["pt2_one"], dtype, lammps=False)   # ASE only
                    export_pt2(potentials, pt2["pt2_stacked"], dtype, lammps=False)
                for system, build in SYSTEMS.items():
                    atoms = build()
                    one = ms_per_call(MLPotCalculator(paths[0]), atoms, args.calls)
                    row = {"system": system, "width": width, "dtype": dtype, "members": args.members,
                           "threads": args.threads, "one_ms": one}
                    for name, kwargs in (("serial", {"stacked": False}),
                                         ("threads2", {"stacked": False, "parallel_members": 2}),
                                         ("stacked", {})):
                        row[f"{name}_ms"] = ms_per_call(MLPotCalculator(paths, **kwargs), atoms, args.calls)
                    for name, path in pt2.items():
                        row[f"{name}_ms"] = ms_per_call(MLPotCalculator(path), atoms, args.calls)
                    rows.append(row)
                    print(f"{system:8s} SchNet {width}/{width}/3 {dtype}: one {one:6.2f} ms | "
                          + " | ".join(f"{n} {row[n + '_ms']:6.2f} ({row[n + '_ms'] / one:.2f}x)"
                                       for n in ("serial", "threads2", "stacked", *pt2)), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
