"""MD time per step: LAMMPS with pair_style mlpot (1 and 2 MPI ranks, both paths: features
exchanged between layers with one cutoff of ghosts, and the whole model on a ghost shell of
n_interactions × cutoff + skin) vs the ASE path (MLPotCalculator + VelocityVerlet), for
192-atom water and 1728-atom Si, and how many atoms each rank evaluates. `--paths pt2` and
`pt2_exchange` add both paths from the .pt2 file of the same model (AOTInductor: its "lammps"
model on the ghost shell, its layer models exchanging features; compare with `shell` and
`exchange`, the same paths from the .pt).

    .venv/bin/python benchmarks/lammps_speed.py                 # SchNetPack-size model (128/128/3, 5 Å)
    .venv/bin/python benchmarks/lammps_speed.py --tiny --steps 5

Threads: 1 rank and the ASE path use --threads torch threads; 2 ranks use --threads/2 each,
so both use the same cores (or --layouts). The ASE path runs the scripted graph without TorchScript's
profiling executor, as the plugin does (it re-specialises on every new edge count);
--profiling-executor keeps torch's default. Prints a table and writes JSON (--json): a list
of records, one per system × path × ranks,
    {"system", "path" ("ase" | "exchange" | "shell" | "pt2" | "pt2_exchange"), "ranks", "threads" (torch threads per
     rank), "s_per_step", "atoms_per_rank" (local + ghost atoms a rank evaluates, mean over
     ranks; the ASE path: all atoms)}
plus "atoms", "cutoff", "n_interactions", "skin", "steps" and, for LAMMPS, "nlocal_per_rank",
"nghost_per_rank", "peak_rss_mb_per_rank" (rank 0's peak resident set from LAMMPS' `info
memory`) and "inflation_one_cutoff" (atoms per rank over local atoms with only one cutoff of
ghosts). --layouts picks the ranks x threads of the LAMMPS runs (default 1 x --threads and
2 x --threads/2), e.g. `--systems si_13824 --paths exchange --layouts 1x2 1x1 2x1`, or
`--systems si_110592 --paths exchange --layouts 2x1 --no-ase --steps 3`. --rounds N measures
everything N times, interleaved: "s_per_step" is then the median and "s_per_step_rounds" lists
the rounds (compare layouts within a round: this machine's speed drifts from minute to minute).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.build import bulk
from ase.md.verlet import VelocityVerlet

from mlpot.sim.structures import water_box
from mlpot.deploy.calculator import MLPotCalculator
from mlpot.deploy.export import export_model
from mlpot.lammps import build_plugin, run_lammps, write_lammps_data
from mlpot.model.config import ModelConfig, build_potential


SYSTEMS = {
    "water_192": (water_box, ["H", "O"]),
    "si_1728": (lambda: bulk("Si", "diamond", a=5.43, cubic=True).repeat(6), ["Si"]),
    "si_13824": (lambda: bulk("Si", "diamond", a=5.43, cubic=True).repeat(12), ["Si"]),
    "si_110592": (lambda: bulk("Si", "diamond", a=5.43, cubic=True).repeat(24), ["Si"]),
}
DEFAULT_SYSTEMS = ["water_192", "si_1728"]


def make_model(path: Path, species, tiny: bool, pt2: bool = False) -> ModelConfig:
    """Export a float32 model to `path` (.pt) and, with pt2, to path.with_suffix(".pt2")."""
    if tiny:
        cfg = ModelConfig(cutoff=3.0, n_atom_basis=16, n_filters=16, n_interactions=2, n_rbf=8)
    else:   # the architecture of shared/bench/md_speed.py (SchNetPack reference)
        cfg = ModelConfig(cutoff=5.0, n_atom_basis=128, n_filters=128, n_interactions=3, n_rbf=20)
    torch.manual_seed(0)
    potential = build_potential(cfg, species)
    potential.set_energy_statistics({z: -1.0 for z in species}, scale=0.1)
    export_model(potential, path, dtype="float32")
    if pt2:
        from mlpot.deploy.pt2 import export_pt2

        export_pt2(potential, path.with_suffix(".pt2"), dtype="float32")
    return cfg


# pair_style mlpot <path>; pt2 / pt2_exchange: shell / exchange with the .pt2 file of the same model
PATHS = ("exchange", "shell", "pt2", "pt2_exchange")
PT2_PATHS = {"pt2": "shell", "pt2_exchange": "exchange"}
DEFAULT_PATHS = ("exchange", "shell")


def lammps_input(data: Path, model: Path, symbols, steps: int, warmup: int, skin: float, path: str) -> str:
    return "\n".join([
        "units metal", "atom_style atomic", "boundary p p p", f"read_data {data}",
        f"neighbor {skin} bin", "neigh_modify every 1 delay 0 check yes",
        f"pair_style mlpot {path}", f"pair_coeff * * {model} {' '.join(symbols)}",
        "velocity all create 300 12345", "fix nve all nve", "timestep 0.0005", "thermo 1000",
        f"run {warmup}", f"run {steps}", "info memory"]) + "\n"


def lammps_step_time(workdir: Path, inp: str, ranks: int, threads: int, plugin: Path, tag: str = "") -> dict:
    path = workdir / f"in_{tag}{ranks}.lmp"
    path.write_text(inp)
    done = run_lammps(path, n_ranks=ranks, plugin=plugin, cwd=workdir, threads=threads)
    loops = re.findall(r"Loop time of ([0-9.eE+-]+) on \d+ procs for (\d+) steps", done.stdout)
    seconds, steps = float(loops[-1][0]), int(loops[-1][1])
    per_rank = {key: float(v) for key, v in re.findall(r"^(Nlocal|Nghost):\s+([0-9.eE+-]+) ave", done.stdout, re.M)}
    # `info memory` (rank 0): the process's peak resident set, torch's allocations included
    peak = re.search(r"Maximum resident set size\s*[:=]\s*([0-9.eE+-]+)\s*Mbyte", done.stdout)
    return {"ms_per_step": 1000 * seconds / steps, "nlocal_per_rank": per_rank["Nlocal"],
            "peak_rss_mb_per_rank": float(peak.group(1)) if peak else None,
            "nghost_per_rank": per_rank["Nghost"]}


def one_cutoff_ghosts(workdir: Path, data: Path, cutoff: float, skin: float, ranks: int) -> float:
    """Ghosts per rank if only one cutoff (+ skin) of ghosts were needed (pair_style zero)."""
    inp = "\n".join(["units metal", "atom_style atomic", "boundary p p p", f"read_data {data}",
                     f"neighbor {skin} bin", f"pair_style zero {cutoff}", "pair_coeff * *", "run 0"]) + "\n"
    path = workdir / f"in_zero_{ranks}.lmp"
    path.write_text(inp)
    done = run_lammps(path, n_ranks=ranks, cwd=workdir, threads=1)
    return float(re.search(r"^Nghost:\s+([0-9.eE+-]+) ave", done.stdout, re.M).group(1))


def ase_step_time(atoms, model: Path, steps: int, warmup: int) -> float:
    atoms = atoms.copy()
    atoms.calc = MLPotCalculator(model)
    rng = np.random.default_rng(12345)
    atoms.set_velocities(rng.normal(size=(len(atoms), 3)) * np.sqrt(300 * units.kB / atoms.get_masses())[:, None])
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    dyn.run(warmup)
    start = time.perf_counter()
    dyn.run(steps)
    return 1000 * (time.perf_counter() - start) / steps


def parse_layout(text: str) -> tuple[int, int]:
    """"RxT" -> (R MPI ranks, T torch threads per rank)."""
    ranks, _, threads = text.partition("x")
    try:
        layout = int(ranks), int(threads)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a layout is RANKSxTHREADS, e.g. 2x1; got {text!r}") from None
    if min(layout) < 1:
        raise argparse.ArgumentTypeError(f"ranks and threads must be >= 1, got {text!r}")
    return layout


def records_of(row: dict, paths, layouts, threads: int, steps: int) -> list[dict]:
    """The --json records of one system's row (module docstring)."""
    common = {k: row[k] for k in ("atoms", "cutoff", "n_interactions", "skin")}
    out = [] if math.isnan(row["ase_ms_per_step"]) else [   # NaN: --no-ase
        {"system": row["system"], "path": "ase", "ranks": 1, "threads": threads,
         "s_per_step": row["ase_ms_per_step"] / 1000,
         "s_per_step_rounds": [t / 1000 for t in row["ase_ms_rounds"]], "atoms_per_rank": float(row["atoms"]), **common,
         "steps": steps}]
    for ranks, rank_threads in layouts:
        for path in paths:
            key = f"{path}_{ranks}x{rank_threads}"
            out.append({"system": row["system"], "path": path, "ranks": ranks, "threads": rank_threads,
                        "s_per_step": row[f"{key}_ms_per_step"] / 1000,
                        "s_per_step_rounds": [t / 1000 for t in row[f"{key}_ms_rounds"]],
                        "atoms_per_rank": row[f"{key}_atoms_per_rank"], **common, "steps": steps,
                        "nlocal_per_rank": row[f"{key}_nlocal_per_rank"],
                        "nghost_per_rank": row[f"{key}_atoms_per_rank"] - row[f"{key}_nlocal_per_rank"],
                        "peak_rss_mb_per_rank": row.get(f"{key}_peak_rss_mb_per_rank"),
                        "inflation_one_cutoff": row[f"{ranks}rank_inflation_one_cutoff"]})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model (16/16/2, 3 Å) instead of 128/128/3, 5 Å")
    parser.add_argument("--steps", type=int, default=10, help="timed MD steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed MD steps first")
    parser.add_argument("--threads", type=int, default=2, help="cores to use in total")
    parser.add_argument("--skin", type=float, default=1.0, help="neighbour skin, Å")
    parser.add_argument("--systems", nargs="+", default=DEFAULT_SYSTEMS, choices=list(SYSTEMS),
                        help=f"default {' '.join(DEFAULT_SYSTEMS)}")
    parser.add_argument("--layouts", nargs="+", type=parse_layout, default=None, metavar="RxT",
                        help="LAMMPS runs as MPI ranks x torch threads per rank (default: 1x{threads} "
                             "and 2x{threads/2}; e.g. 1x2 1x1 2x1)")
    parser.add_argument("--no-ase", action="store_true", help="skip the ASE path")
    parser.add_argument("--paths", nargs="+", default=list(DEFAULT_PATHS), choices=list(PATHS),
                        help="pair_style mlpot paths to time (exchange: one cutoff of ghosts; shell: T cutoffs)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every path and layout this many times, interleaved (the machine's speed "
                             "drifts: compare within a round); the table and s_per_step give the median")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--profiling-executor", action="store_true",
                        help="keep TorchScript's profiling executor in the ASE path")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if not args.profiling_executor:
        torch._C._set_graph_executor_optimize(False)

    layouts = args.layouts or [(1, args.threads), (2, max(1, args.threads // 2))]
    plugin = build_plugin()
    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name in args.systems:
            make_atoms, symbols = SYSTEMS[name]
            atoms = make_atoms()
            model = workdir / f"{name}.pt"
            cfg = make_model(model, sorted(set(atoms.numbers)), args.tiny, pt2=bool(PT2_PATHS.keys() & set(args.paths)))
            data = write_lammps_data(workdir / f"{name}.data", atoms, symbols)
            row = {"system": name, "atoms": len(atoms), "cutoff": cfg.cutoff, "n_interactions": cfg.n_interactions,
                   "skin": args.skin}
            ghosts_one = {ranks: one_cutoff_ghosts(workdir, data, cfg.cutoff, args.skin, ranks)
                          for ranks in sorted({r for r, _ in layouts})}
            ase_rounds = []
            for _ in range(args.rounds):   # each round: the ASE path, then every layout and path
                ase_rounds.append(float("nan") if args.no_ase else
                                  ase_step_time(atoms, model, args.steps, args.warmup))
                for ranks, threads in layouts:
                    for path in args.paths:
                        inp = lammps_input(data, model.with_suffix(".pt2") if path in PT2_PATHS else model, symbols,
                                           args.steps, args.warmup, args.skin, PT2_PATHS.get(path, path))
                        r = lammps_step_time(workdir, inp, ranks, threads, plugin,
                                             tag=f"{name}_{path}_{ranks}x{threads}_")
                        atoms_per_rank = r["nlocal_per_rank"] + r["nghost_per_rank"]
                        key = f"{path}_{ranks}x{threads}"
                        row.setdefault(f"{key}_ms_rounds", []).append(r["ms_per_step"])
                        row[f"{key}_atoms_per_rank"] = atoms_per_rank
                        row[f"{key}_nlocal_per_rank"] = r["nlocal_per_rank"]
                        row[f"{key}_peak_rss_mb_per_rank"] = r["peak_rss_mb_per_rank"]
                        row[f"{key}_inflation"] = atoms_per_rank / r["nlocal_per_rank"]
                    row[f"{ranks}rank_inflation_one_cutoff"] = \
                        (r["nlocal_per_rank"] + ghosts_one[ranks]) / r["nlocal_per_rank"]
            row["ase_ms_rounds"] = ase_rounds
            for key in [k[:-len("_ms_rounds")] for k in row if k.endswith("_ms_rounds")]:
                row[f"{key}_ms_per_step"] = statistics.median(row[f"{key}_ms_rounds"])
            results.append(row)
            print(json.dumps(row), flush=True)

    print(f"\n{'system':10} {'atoms':>6} {'ASE ms':>9} {'path':>9} {'ranks x threads':>16} {'ms/step':>9} "
          f"{'atoms/rank':>11} {'inflation':>10} {'1-cutoff shell':>15} {'peak MB/rank':>13} {'rounds ms':>15}")
    for r in results:
        for path in args.paths:
            for ranks, threads in layouts:
                key = f"{path}_{ranks}x{threads}"
                print(f"{r['system']:10} {r['atoms']:6d} {r['ase_ms_per_step']:9.1f} {path:>9} "
                      f"{f'{ranks} x {threads}':>16} {r[f'{key}_ms_per_step']:9.1f} "
                      f"{r[f'{key}_atoms_per_rank']:11.0f} {r[f'{key}_inflation']:10.1f} "
                      f"{r[f'{ranks}rank_inflation_one_cutoff']:15.1f} {r[f'{key}_peak_rss_mb_per_rank'] or 0:13.0f} "
                      f"{' '.join(f'{t:.1f}' for t in r[f'{key}_ms_rounds']):>15}")
    if args.json:
        records = [record for r in results for record in records_of(r, args.paths, layouts, args.threads, args.steps)]
        Path(args.json).write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
