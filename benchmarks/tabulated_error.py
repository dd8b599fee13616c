"""Tabulated filters and the fused kernels against the straightforward SchNet, on real structures.

    .venv/bin/python benchmarks/tabulated_error.py                        # random-weight SchNet 128/128/3
    .venv/bin/python benchmarks/tabulated_error.py --checkpoint RUN/best.ckpt --frames 50
    .venv/bin/python benchmarks/tabulated_error.py --spacings 0 0.04 0.08 --dtypes float32

The reference is the model exported in float64 with the plain-PyTorch kernels (the filter
networks evaluated as written). Against it, through MLPotCalculator on the first --frames frames
of ../shared/data/water_pbc/water_192.extxyz (liquid water, 192 atoms, DFT frames): the fused
kernels (the same network, mlpot's C++ loops) and the tabulated filters (quintic splines;
spacing 0 = the spacing export chooses) in each --dtypes. Prints the largest and RMS force
deviation (meV/Å), the largest deviation relative to the largest force, and the largest energy
deviation (meV/atom). In float32 the fused row is float32 rounding itself: a table whose row
matches it is exact to float32 rounding.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

DEFAULT_FRAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "water_pbc" / "water_192.extxyz"


def model_from(checkpoint: str | None):
    """A trained potential from a checkpoint, or SchNet 128/128/3/20 (5 Å) with random weights."""
    import torch

    if checkpoint:
        from mlpot.train.checkpoint import load_potential

        return load_potential(checkpoint), f"checkpoint {checkpoint}"
    from mlpot.model.config import ModelConfig, build_potential

    torch.manual_seed(0)
    config = ModelConfig(representation="schnet", cutoff=5.0, n_atom_basis=128, n_filters=128,
                         n_interactions=3, n_rbf=20)
    return build_potential(config, [1, 6, 8, 14]), "random weights, SchNet 128/128/3/20, 5 Å"


def forces_and_energies(model_path: Path, frames) -> tuple[list[np.ndarray], np.ndarray]:
    from mlpot.deploy.calculator import MLPotCalculator

    calc = MLPotCalculator(model_path)
    forces, energies = [], []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = calc
        forces.append(atoms.get_forces())
        energies.append(atoms.get_potential_energy() / len(atoms))
    return forces, np.array(energies)


def deviations(forces, energies, ref_forces, ref_energies) -> dict:
    diff = np.concatenate([(a - b).ravel() for a, b in zip(forces, ref_forces)])
    scale = np.concatenate([f.ravel() for f in ref_forces])
    return {"max_dF_meV_A": 1e3 * float(np.abs(diff).max()), "rms_dF_meV_A": 1e3 * float(np.sqrt(np.mean(diff ** 2))),
            "max_dF_relative": float(np.abs(diff).max() / np.abs(scale).max()),
            "max_dE_meV_atom": 1e3 * float(np.abs(energies - ref_energies).max()),
            "rms_F_meV_A": 1e3 * float(np.sqrt(np.mean(scale ** 2)))}


def compare_all(potential, frames, spacings, dtypes, folder: Path) -> list[dict]:
    """Rows of deviations from the float64 reference export for fused and tabulated exports."""
    from mlpot.deploy.export import export_model

    export_model(potential, folder / "reference.pt", "float64", kernels="reference")
    ref_forces, ref_energies = forces_and_energies(folder / "reference.pt", frames)
    rows = []
    for dtype in dtypes:
        candidates = [("fused", 0.0)] + [("tabulated", spacing) for spacing in spacings]
        for kernels, spacing in candidates:
            path = folder / f"{kernels}_{dtype}_{spacing}.pt"
            metadata = export_model(potential, path, dtype, kernels=kernels, table_spacing=spacing)
            row = {"kernels": kernels, "dtype": dtype, "spacing_A": metadata.get("table_spacing"),
                   "table_error": metadata.get("table_error"), "frames": len(frames)}
            row.update(deviations(*forces_and_energies(path, frames), ref_forces, ref_energies))
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="a training checkpoint (default: random weights)")
    ap.add_argument("--data", default=str(DEFAULT_FRAMES), help="structures (anything ase.io reads)")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--spacings", type=float, nargs="+", default=[0.0, 0.04, 0.08],
                    help="knot spacings of the tabulated exports, Å (0: the one export chooses)")
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float32", "float64"])
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"{args.data} not found (../shared/data holds the water frames); give --data", file=sys.stderr)
        return 2
    import ase.io

    frames = ase.io.read(args.data, index=f":{args.frames}")
    potential, what = model_from(args.checkpoint)
    with tempfile.TemporaryDirectory() as folder:
        rows = compare_all(potential, frames, args.spacings, args.dtypes, Path(folder))
    print(f"\nAgainst the float64 network in plain PyTorch ({what}), {len(frames)} frames of {args.data}:\n")
    print("| kernels | dtype | knot spacing Å | max |ΔF| meV/Å | RMS ΔF meV/Å | max |ΔF| / max |F| | "
          "max |ΔE| meV/atom | RMS force meV/Å |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        spacing = f"{r['spacing_A']:.4g}" if r["spacing_A"] else "—"
        print(f"| {r['kernels']} | {r['dtype']} | {spacing} | {r['max_dF_meV_A']:.2e} | {r['rms_dF_meV_A']:.2e} | "
              f"{r['max_dF_relative']:.1e} | {r['max_dE_meV_atom']:.2e} | {r['rms_F_meV_A']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
