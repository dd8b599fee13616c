"""Training speed: structures per second for SchNet (128 features, 128 filters, 3
interactions, 20 Gaussians, cosine cutoff 5 Å), batch 32, energy + forces in the loss
(double backward), Adam, on rMD17 ethanol — mlpot and SchNetPack 2.1.1 side by side.

    .venv/bin/python benchmarks/train_speed.py [--n-train 320] [--epochs 2] [--threads N] [--rounds 3]

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
DATA = ROOT.parent / "shared" / "data" / "rmd17" / "rmd17_ethanol_train_01.npz"
DEFAULT_SPK_PYTHON = Path.home() / ".cache" / "schnetpack-venv" / "bin" / "python"
CUTOFF = 5.0              # Å
BATCH_SIZE = 32
ENERGY_WEIGHT = 0.01      # ρ, mlpot's training.energy_weight default
LR = 5e-4                 # mlpot's training.lr default
KCAL_MOL_EV = 4184.0 / (6.02214076e23 * 1.602176634e-19)   # 1 kcal/mol in eV
ARCH = "SchNet 128/128/3/20, batch 32, E+F loss, rMD17 ethanol (9 atoms)"


def result_line(impl: str, n_structures: int, seconds: float, device: str) -> dict:
    return {"implementation": impl, "structures_per_s": n_structures / seconds,
            "ms_per_batch": 1000 * seconds / (n_structures / BATCH_SIZE), "timed_structures": n_structures,
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
            "training": {"batch_size": BATCH_SIZE, "device": args.device, "checkpoint_every": None,
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
    return result_line("mlpot", args.epochs * len(trainer.data.train), seconds, str(trainer.ctx.device))


# --- SchNetPack (worker in its venv; imports nothing from mlpot) -------------------------
def schnetpack_batches(path: str, n_train: int, device: torch.device) -> list[dict]:
    """n_train structures (random, seed 0) as SchNetPack input dicts with MatScipyNeighborList
    and CastTo32, collated into batches of BATCH_SIZE by SchNetPack's own collate function."""
    import schnetpack.properties as P
    import schnetpack.transform as trn
    from schnetpack.data.loader import _atoms_collate_fn

    data = np.load(path)
    pick = np.random.default_rng(0).permutation(len(data["energies"]))[:n_train]
    z = torch.as_tensor(data["nuclear_charges"].astype(np.int64))
    energies = data["energies"][pick] * KCAL_MOL_EV
    energies = energies - energies.mean()
    neighbors, cast = trn.MatScipyNeighborList(cutoff=CUTOFF), trn.CastTo32()
    structures = []
    for k, i in enumerate(pick):
        inputs = {P.idx: torch.tensor([k]), P.n_atoms: torch.tensor([len(z)]), P.Z: z.clone(),
                  P.R: torch.as_tensor(data["coords"][i], dtype=torch.float64),
                  P.cell: torch.zeros((1, 3, 3), dtype=torch.float64), P.pbc: torch.zeros(3, dtype=torch.bool),
                  "energy": torch.tensor([energies[k]], dtype=torch.float64),
                  "forces": torch.as_tensor(data["forces"][i] * KCAL_MOL_EV, dtype=torch.float64)}
        structures.append(cast(neighbors(inputs)))
    batches = [_atoms_collate_fn(structures[s:s + BATCH_SIZE]) for s in range(0, len(structures), BATCH_SIZE)]
    return [{k: v.to(device) for k, v in b.items()} for b in batches]


def schnetpack_speed(args) -> dict:
    import schnetpack as spk
    from schnetpack_schnet import schnetpack_schnet

    device = torch.device(args.device)
    batches = schnetpack_batches(args.data, args.n_train, device)
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
    return dict(result_line("schnetpack", args.epochs * n_structures, seconds, str(device)),
                version=spk.__version__)


def worker(args) -> int:
    """One implementation in this process; prints one JSON line."""
    result = schnetpack_speed(args) if args.worker == "schnetpack" else mlpot_speed(args)
    print(json.dumps(result), flush=True)
    return 0


# --- driver ------------------------------------------------------------------------------
def run_worker(python: str, impl: str, args) -> dict | None:
    cmd = [python, str(Path(__file__).resolve()), "--worker", impl, "--data", args.data,
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
    parser.add_argument("--data", default=str(DATA), help="rMD17 ethanol npz (default: ../shared/data)")
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
    print(f"\n{ARCH}, {mine['device']}, {args.threads} threads, "
          f"{args.n_train} structures x {args.epochs} timed epochs, {args.rounds} round(s):")
    for mine, spk in rounds:
        if spk:
            print(f"  mlpot {mine['structures_per_s']:.1f} structures/s, SchNetPack {spk['version']} "
                  f"{spk['structures_per_s']:.1f} structures/s "
                  f"({mine['ms_per_batch']:.0f} vs {spk['ms_per_batch']:.0f} ms per batch of 32): "
                  f"{mine['structures_per_s'] / spk['structures_per_s']:.2f}x")
        else:
            print(f"  mlpot {mine['structures_per_s']:.1f} structures/s ({mine['ms_per_batch']:.0f} ms per batch of 32)")
    ratios = [m["structures_per_s"] / s["structures_per_s"] for m, s in rounds if s]
    if ratios:
        print(f"  ratio mlpot / SchNetPack: median {float(np.median(ratios)):.2f}x "
              f"(range {min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} round(s))")
        return 0
    print("  SchNetPack " + ("failed (see above)" if have_spk else f"skipped: no venv at {args.spk_python}"))
    return 1 if have_spk else 0

if __name__ == "__main__":
    sys.exit(main())
