"""Training speed: structures per second for SchNet (128 features, 128 filters, 3
interactions, 20 Gaussians, cosine cutoff 5 Å), energy + forces in the loss (double
backward), Adam, on rMD17 ethanol (batch 32) or liquid water (64 H2O in a periodic 12.4 Å
cell, batch 10, mlpot's default) — mlpot and SchNetPack 2.1.1 side by side.

    .venv/bin/python benchmarks/train_speed.py [--n-train 320] [--epochs 2] [--threads N] [--rounds 3]
    .venv/bin/python benchmarks/train_speed.py --system water --n-train 40 --threads 2

mlpot: the trainer's own epoch loop (per-batch collation from its cached structures, loss
ρ·(ΔE)² + mean (ΔF)² with ρ = 0.01, backward, Adam, EMA update, MAE sums), excluding the first
epoch (neighbour lists are built then) and checkpoint writing.

SchNetPack: its SchNet of the same architecture in spk.model.NeuralNetworkPotential
(PairwiseDistances, Atomwise energy, Forces by autograd with create_graph in training mode),
float32. The same number of structures is taken from the npz, given MatScipyNeighborList and
CastTo32 as SchNetPack's data pipeline would, and collated into batches of 32 once, before
timing, so neighbour lists and collation are outside the timed loop. Each step: model(batch),
loss 0.01·mean((E − E_ref)²) + mean((F − F_ref)²), backward, Adam step, zero_grad; one
untimed warm-up epoch, then --epochs timed epochs. Energies in eV, relative to the mean
energy of the training structures. It runs as a worker process of this script in the venv
made by ../shared/bench/setup_schnetpack.sh (--spk-python) and is skipped when that venv is
absent. Both sides use the same --threads. The machine may be shared: compare the ratio from
one run, not figures across runs; --rounds alternates the two and prints the median ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = {   # data file under ../shared/data, batch size, what it is
    "ethanol": ("rmd17/rmd17_ethanol_train_01.npz", 32, "rMD17 ethanol (9 atoms)"),
    "water": ("water_pbc/water_192.extxyz", 10, "liquid water (192 atoms, periodic)"),
}
DEFAULT_SPK_PYTHON = Path.home() / ".cache" / "schnetpack-venv" / "bin" / "python"
CUTOFF = 5.0              # Å
ENERGY_WEIGHT = 0.01      # ρ, mlpot's training.energy_weight default
LR = 5e-4                 # mlpot's training.lr default
KCAL_MOL_EV = 4184.0 / (6.02214076e23 * 1.602176634e-19)   # 1 kcal/mol in eV
ARCH = "SchNet 128/128/3/20, E+F loss"


def result_line(impl: str, n_structures: int, seconds: float, device: str, batch_size: int) -> dict:
    return {"implementation": impl, "structures_per_s": n_structures / seconds,
            "ms_per_batch": 1000 * seconds / (n_structures / batch_size), "timed_structures": n_structures,
            "seconds": seconds, "threads": torch.get_num_threads(), "device": device}


# --- mlpot (this venv) -------------------------------------------------------------------
def mlpot_speed(args) -> dict:
    from mlpot.train import distributed as dist
    from mlpot.train.config import config_from_dict
    from mlpot.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_from_dict({
            "data": {"train": args.data, "n_train": args.n_train, "n_val": 32},
            "model": {"representation": "schnet", "cutoff": CUTOFF, "n_atom_basis": 128, "n_filters": 128,
                      "n_interactions": 3, "n_rbf": 20},
            "training": {"batch_size": args.batch_size, "device": args.device, "checkpoint_every": None,
                         "energy_weight": ENERGY_WEIGHT, "lr": LR},
            "output": tmp})
        trainer = Trainer(cfg, dist.setup(args.device), quiet=True)
        trainer.train_epoch(time.monotonic())                 # warm-up: builds the neighbour lists
        trainer.progress.epoch += 1
        start = time.perf_counter()
        for _ in range(args.epochs):
            trainer.train_epoch(time.monotonic())
            trainer.progress.epoch += 1
        if trainer.ctx.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return result_line("mlpot", args.epochs * len(trainer.data.train), seconds, str(trainer.ctx.device),
                       args.batch_size)


# --- SchNetPack (worker in its venv; imports nothing from mlpot) -------------------------
def read_frames(path: str, n_train: int) -> list[tuple]:
    """n_train frames (random, seed 0) of an rMD17 npz or an extxyz file as (Z, positions Å,
    cell rows Å, pbc, energy eV, forces eV/Å)."""
    if path.endswith(".npz"):
        data = np.load(path)
        z = data["nuclear_charges"].astype(np.int64)
        pick = np.random.default_rng(0).permutation(len(data["energies"]))[:n_train]
        return [(z, data["coords"][i], np.zeros((3, 3)), np.zeros(3, bool), data["energies"][i] * KCAL_MOL_EV,
                 data["forces"][i] * KCAL_MOL_EV) for i in pick]
    import ase.io

    frames = ase.io.read(path, ":")
    pick = np.random.default_rng(0).permutation(len(frames))[:n_train]
    return [(a.numbers.astype(np.int64), a.positions, np.array(a.cell), a.pbc, a.get_potential_energy(),
             a.get_forces()) for a in (frames[i] for i in pick)]


def schnetpack_batches(path: str, n_train: int, batch_size: int, device: torch.device) -> list[dict]:
    """n_train structures (random, seed 0) as SchNetPack input dicts with MatScipyNeighborList
    and CastTo32, collated into batches of batch_size by SchNetPack's own collate function."""
    import schnetpack.properties as P
    import schnetpack.transform as trn
    from schnetpack.data.loader import _atoms_collate_fn

    frames = read_frames(path, n_train)
    mean = np.mean([f[4] for f in frames])
    neighbors, cast = trn.MatScipyNeighborList(cutoff=CUTOFF), trn.CastTo32()
    structures = []
    for k, (z, r, cell, pbc, energy, forces) in enumerate(frames):
        inputs = {P.idx: torch.tensor([k]), P.n_atoms: torch.tensor([len(z)]), P.Z: torch.as_tensor(z),
                  P.R: torch.as_tensor(r, dtype=torch.float64),
                  P.cell: torch.as_tensor(cell, dtype=torch.float64).reshape(1, 3, 3),
                  P.pbc: torch.as_tensor(np.asarray(pbc, bool)),
                  "energy": torch.tensor([energy - mean], dtype=torch.float64),
                  "forces": torch.as_tensor(forces, dtype=torch.float64)}
        structures.append(cast(neighbors(inputs)))
    batches = [_atoms_collate_fn(structures[s:s + batch_size]) for s in range(0, len(structures), batch_size)]
    return [{k: v.to(device) for k, v in b.items()} for b in batches]


def schnetpack_speed(args) -> dict:
    import schnetpack as spk
    from schnetpack_schnet import schnetpack_schnet

    device = torch.device(args.device)
    batches = schnetpack_batches(args.data, args.n_train, args.batch_size, device)
    model = schnetpack_schnet(CUTOFF).to(device)
    model.train()                                             # Forces: create_graph=True
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)

    def epoch():
        for batch in batches:
            # a shallow copy: the model writes its outputs and intermediates into the dict
            pred = model(dict(batch))
            loss = (ENERGY_WEIGHT * (pred["energy"] - batch["energy"]).square().mean()
                    + (pred["forces"] - batch["forces"]).square().mean())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize()

    epoch()                                                   # warm-up, untimed
    start = time.perf_counter()
    for _ in range(args.epochs):
        epoch()
    seconds = time.perf_counter() - start
    n_structures = sum(len(batch["energy"]) for batch in batches)
    return dict(result_line("schnetpack", args.epochs * n_structures, seconds, str(device), args.batch_size),
                version=spk.__version__)


def worker(args) -> int:
    """One implementation in this process; prints one JSON line."""
    result = schnetpack_speed(args) if args.worker == "schnetpack" else mlpot_speed(args)
    print(json.dumps(result), flush=True)
    return 0


# --- driver ------------------------------------------------------------------------------
def run_worker(python: str, impl: str, args) -> dict | None:
    cmd = [python, str(Path(__file__).resolve()), "--worker", impl, "--data", args.data,
           "--batch-size", str(args.batch_size),
           "--n-train", str(args.n_train), "--epochs", str(args.epochs), "--threads", str(args.threads),
           "--device", args.device]
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        print(f"{impl} failed (exit {done.returncode}): {done.stderr.strip()[-800:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=sorted(SYSTEMS), default="ethanol")
    parser.add_argument("--data", default=None, help="its file (default: under ../shared/data)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32 ethanol, 10 water")
    parser.add_argument("--n-train", type=int, default=320, help="structures per timed epoch")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both implementations (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=1, help="alternate mlpot and SchNetPack this many times")
    parser.add_argument("--spk-python", default=str(DEFAULT_SPK_PYTHON),
                        help="python of the SchNetPack 2.1.1 venv (../shared/bench/setup_schnetpack.sh)")
    parser.add_argument("--worker", choices=["mlpot", "schnetpack"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    relative, batch_size, described = SYSTEMS[args.system]
    args.data = args.data or str(ROOT.parent / "shared" / "data" / relative)
    args.batch_size = args.batch_size or batch_size
    if not Path(args.data).is_file():
        print(f"{args.data} not found; pass --data", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()                   # the worker gets the same number
    if args.worker:
        return worker(args)

    have_spk = Path(args.spk_python).is_file()
    rounds = []
    for _ in range(args.rounds):     # alternate the two, so drifts in machine load hit both
        mine = mlpot_speed(args)
        print(json.dumps(mine), flush=True)
        spk = run_worker(args.spk_python, "schnetpack", args) if have_spk else None
        if spk:
            print(json.dumps(spk), flush=True)
        rounds.append((mine, spk))
    print(f"\n{ARCH}, {described}, batch {args.batch_size}, {mine['device']}, {args.threads} threads, "
          f"{args.n_train} structures x {args.epochs} timed epochs, {args.rounds} round(s):")
    for mine, spk in rounds:
        if spk:
            print(f"  mlpot {mine['structures_per_s']:.1f} structures/s, SchNetPack {spk['version']} "
                  f"{spk['structures_per_s']:.1f} structures/s "
                  f"({mine['ms_per_batch']:.0f} vs {spk['ms_per_batch']:.0f} ms per batch of {args.batch_size}): "
                  f"{mine['structures_per_s'] / spk['structures_per_s']:.2f}x")
        else:
            print(f"  mlpot {mine['structures_per_s']:.1f} structures/s ({mine['ms_per_batch']:.0f} ms per batch of {args.batch_size})")
    ratios = [m["structures_per_s"] / s["structures_per_s"] for m, s in rounds if s]
    if ratios:
        print(f"  ratio mlpot / SchNetPack: median {float(np.median(ratios)):.2f}x "
              f"(range {min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} round(s))")
        return 0
    print("  SchNetPack " + ("failed (see above)" if have_spk else f"skipped: no venv at {args.spk_python}"))
    return 1 if have_spk else 0

if __name__ == "__main__":
    sys.exit(main())
