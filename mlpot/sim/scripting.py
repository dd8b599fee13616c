"""The shared start of the scripts in md_examples/: common options, the starting structure,
and checks before any work is done. Kept in the package so that a copied script needs only
`pip install mlpot`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from ase.build import molecule
from ase.collections import g2
from ase.io import read

from mlpot.sim.md import thermalize  # noqa: F401  (the md_examples imported it from here)

# friendly names for ase.build.molecule
ALIASES = {"ethanol": "CH3CH2OH", "methanol": "CH3OH", "water": "H2O"}


def build_molecule(name: str):
    """ase.build.molecule(name) (aliases: ethanol, methanol, water) with a clear error for
    unknown names."""
    try:
        return molecule(ALIASES.get(name, name))
    except KeyError:
        raise ValueError(f"unknown molecule {name!r}; use a name from ase.build.molecule, e.g. "
                         f"CH3CH2OH, H2O, CH3COOH ({len(g2.names)} names in ase.collections.g2)") from None


def add_common_arguments(parser: argparse.ArgumentParser, out: str, threads: int = 0,
                         device: bool = True) -> None:
    """--model, --molecule, --structure, [--device], --threads, --out."""
    parser.add_argument("--model", default="demo_output/model.pt", help="exported model file (mlpot export)")
    parser.add_argument("--molecule", default="ethanol", help="name for ase.build.molecule (default ethanol)")
    parser.add_argument("--structure", help="start from this file instead (any format ASE reads)")
    if device:
        parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=threads, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default=out, help="output folder")


def prepare_run(args) -> Path:
    """Check the model file exists, set torch threads, make the output folder; returns it."""
    if not Path(args.model).is_file():
        sys.exit(f"model file {args.model} not found; run `mlpot demo` first or pass --model PATH")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def load_structure(args):
    """The starting structure: --structure FILE, else the molecule --molecule."""
    if args.structure:
        return read(args.structure)
    try:
        return build_molecule(args.molecule)
    except ValueError as error:
        sys.exit(f"{error}; or pass --structure FILE")


