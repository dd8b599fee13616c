"""Training speed: structures per second for SchNet (128 features, 128 filters, 3
interactions, 20 Gaussians, cutoff 5 Å), batch 32, energy + forces in the loss (double
backward), Adam and EMA, on rMD17 ethanol — the trainer's own epoch loop, excluding the
first epoch (neighbour lists are built then) and checkpoint writing.

    .venv/bin/python benchmarks/train_speed.py [--n-train 320] [--epochs 2] [--threads N]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "rmd17" / "rmd17_ethanol_train_01.npz"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA), help="rMD17 ethanol npz (default: ../shared/data)")
    parser.add_argument("--n-train", type=int, default=320, help="structures per timed epoch")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"{args.data} not found; pass --data", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)

    from mlpot.train import distributed as dist
    from mlpot.train.config import config_from_dict
    from mlpot.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_from_dict({
            "data": {"train": args.data, "n_train": args.n_train, "n_val": 32},
            "model": {"representation": "schnet", "cutoff": 5.0, "n_atom_basis": 128, "n_filters": 128,
                      "n_interactions": 3, "n_rbf": 20},
            "training": {"batch_size": 32, "device": args.device, "checkpoint_every": None},
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
    n = args.epochs * len(trainer.data.train)
    print(f"SchNet 128/128/3/20, batch 32, E+F loss, rMD17 ethanol (9 atoms), {trainer.ctx.device}, "
          f"{torch.get_num_threads()} threads: {n / seconds:.1f} structures/s "
          f"({1000 * seconds / (n / 32):.0f} ms per batch of 32)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
