"""Error of the tabulated-filter kernels against the exact (fused) SchNet, on real structures.

    .venv/bin/python benchmarks/tabulated_error.py                        # random-weight SchNet 128/128/3
    .venv/bin/python benchmarks/tabulated_error.py --checkpoint RUN/best.ckpt --frames 50
    .venv/bin/python benchmarks/tabulated_error.py --spacings 0.02 0.01 0.005 --dtypes float64

For each knot spacing and dtype, the same model is exported twice (kernels "fused" and
"tabulated") and evaluated through MLPotCalculator on the first --frames frames of
../shared/data/water_pbc/water_192.extxyz (liquid water, 192 atoms, DFT frames); prints the
maximum and RMS force deviation (meV/Å) and the maximum energy deviation (meV/atom). float64
isolates the spline error; float32 is what MD runs (its own rounding included).
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
    from mlpot.model_config import ModelConfig, build_potential

    torch.manual_seed(0)
    config = ModelConfig(representation="schnet", cutoff=5.0, n_atom_basis=128, n_filters=128,
                         n_interactions=3, n_rbf=20)
    return build_potential(config, [1, 6, 8, 14]), "random weights, SchNet 128/128/3/20, 5 Å"


def forces_and_energies(model_path: Path, frames) -> tuple[list[np.ndarray], np.ndarray]:
    from mlpot.calculator import MLPotCalculator

    calc = MLPotCalculator(model_path)
    forces, energies = [], []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = calc
        forces.append(atoms.get_forces())
        energies.append(atoms.get_potential_energy() / len(atoms))
    return forces, np.array(energies)


def compare(potential, frames, spacing: float, dtype: str, folder: Path) -> dict:
    from mlpot.export import export_model

    exact, approx = folder / f"exact_{dtype}.pt", folder / f"tab_{dtype}_{spacing}.pt"
    if not exact.exists():
        export_model(potential, exact, dtype, kernels="fused")
    used = export_model(potential, approx, dtype, kernels="tabulated", table_spacing=spacing)["table_spacing"]
    f_exact, e_exact = forces_and_energies(exact, frames)
    f_approx, e_approx = forces_and_energies(approx, frames)
    diff = np.concatenate([(a - b).ravel() for a, b in zip(f_approx, f_exact)])
    scale = np.concatenate([f.ravel() for f in f_exact])
    return {"spacing_A": used, "dtype": dtype, "frames": len(frames),
            "max_dF_meV_A": 1e3 * float(np.abs(diff).max()), "rms_dF_meV_A": 1e3 * float(np.sqrt(np.mean(diff ** 2))),
            "max_dE_meV_atom": 1e3 * float(np.abs(e_approx - e_exact).max()),
            "rms_F_meV_A": 1e3 * float(np.sqrt(np.mean(scale ** 2)))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="a training checkpoint (default: random weights)")
    ap.add_argument("--data", default=str(DEFAULT_FRAMES), help="structures (anything ase.io reads)")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--spacings", type=float, nargs="+", default=[0.02, 0.01, 0.005])
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float32", "float64"])
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"{args.data} not found (../shared/data holds the water frames); give --data", file=sys.stderr)
        return 2
    import ase.io

    frames = ase.io.read(args.data, index=f":{args.frames}")
    potential, what = model_from(args.checkpoint)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for dtype in args.dtypes:
            for spacing in args.spacings:
                rows.append(compare(potential, frames, spacing, dtype, Path(folder)))
                print(json.dumps(rows[-1]), flush=True)
    print(f"\nTabulated filters vs the exact SchNet ({what}) on {len(frames)} frames of {args.data}:\n")
    print("| knot spacing Å | dtype | max |ΔF| meV/Å | RMS ΔF meV/Å | max |ΔE| meV/atom | RMS force meV/Å |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['spacing_A']:.4g} | {r['dtype']} | {r['max_dF_meV_A']:.2e} | {r['rms_dF_meV_A']:.2e} | "
              f"{r['max_dE_meV_atom']:.2e} | {r['rms_F_meV_A']:.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
