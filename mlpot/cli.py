"""The `mlpot` command. Each subcommand lives in its own module, which defines
`add_arguments(parser)` and `run(args) -> int`; modules are imported only when
their subcommand runs, so `mlpot --help` stays fast."""
from __future__ import annotations

import argparse
import importlib
import sys

import mlpot

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("mlpot.commands.demo", "reference data with GFN2-xTB -> train -> export -> MD and spectra"),
    "import": ("mlpot.commands.import_data", "reference data (extxyz, MD17 npz, SchNetPack db, ...) -> store in eV/Å"),
    "lammps": ("mlpot.commands.lammps", "build the LAMMPS plugin (pair_style mlpot) and print its path"),
    "ops": ("mlpot.commands.ops", "the C++ operators as a shared library for libtorch engines: prints its path"),
    "export": ("mlpot.commands.export", "training checkpoint -> one model file with metadata (.pt TorchScript, or .pt2 AOTInductor package)"),
    "info": ("mlpot.commands.info", "print the metadata of an exported model file"),
    "train": ("mlpot.commands.train", "train a potential from a YAML config (checkpoints, resume, torchrun)"),
    "learn": ("mlpot.commands.learn", "active learning: committee MD, label uncertain frames with a reference, retrain"),
    "eval": ("mlpot.commands.eval", "errors of a checkpoint or exported model on labelled data, as JSON"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlpot", description="Machine-learned interatomic potentials for ASE and LAMMPS.")
    parser.add_argument("--version", action="version", version=f"mlpot {mlpot.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, text) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
