"""Export a checkpoint trained before the pair repulsion existed (2026-12-07) with the repulsion
fitted to its training split, as training with today's defaults would have it.

    .venv/bin/python benchmarks/add_repulsion.py runs/water/best.ckpt -o water_wall.pt [--strength 100]

The repulsion is zero on every training structure (mlpot.model.nn.pair_repulsion), so the network a
run trained without it is the network it would train with it; the radii come from the run's
own training split (its config.yaml and split.npz). Used for the MD stability runs of
2026-12-07 (docs/benchmarks.md) on the 20-minute models of 2026-12-06.
"""
from __future__ import annotations

import argparse
from pathlib import Path



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--strength", type=float, default=100.0, help="eV (model.repulsion's default)")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args(argv)

    from mlpot.data.splits import load_split
    from mlpot.deploy.export import export_model
    from mlpot.model.nn.pair_repulsion import fit_contact_radii
    from mlpot.train.checkpoint import load_potential
    from mlpot.train.config import load_config
    from mlpot.train.data import load_training_data

    run = Path(args.checkpoint).resolve().parent
    cfg = load_config(run / "config.yaml")
    potential = load_potential(args.checkpoint)
    data = load_training_data(cfg.data, potential.cutoff, load_split(run / "split.npz"))
    graphs = [data.train[i] for i in range(len(data.train))]
    potential.repulsion.strength.fill_(args.strength)
    fitted = fit_contact_radii(potential.repulsion, graphs, potential.species)
    export_model(potential, args.output, args.dtype, training_data=str(cfg.data.train))
    print(f"{args.output}: pair repulsion {fitted['strength_eV']:g} eV below "
          + ", ".join(f"{k} {v:.2f} Å" for k, v in fitted["radii_A"].items())
          + f" ({len(graphs)} training structures)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
