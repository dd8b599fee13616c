"""Energy+force call time of MLPotCalculator (SchNet and wACSF) against SchNetPack 2.1.1, the
systems and protocol of ../shared/bench/md_speed.py, side by side in one run.

    .venv/bin/python benchmarks/md_speed.py                  # ethanol, water 192, Si 216, Si 1728
    .venv/bin/python benchmarks/md_speed.py --large          # + Si 13824 and Si 110592, peak memory
    .venv/bin/python benchmarks/md_speed.py --rounds 3       # alternate implementations 3 times

mlpot SchNet runs as `mlpot export` writes it by default in float32 (filter networks as quintic
splines, tables whose error lies far below float32 rounding: benchmarks/tabulated_error.py
measures the forces against the float64 network), with the filter networks evaluated in the
fused C++ kernels ("fused network"), and with the plain-PyTorch reference kernels; the default
SchNet and the wACSF model also as `.pt2` packages (torch.export + AOTInductor, mlpot.deploy.pt2),
compiled here.

Architecture (the SchNet paper's MD17 setup, as in the reference script): SchNet with 128
atom features, 128 filters, 3 interactions, 20 Gaussians, cosine cutoff 5 Å, float32; wACSF
with mlpot's defaults (22 radial, 5 angular widths, cutoff 5 Å), float32. Each call follows a
0.01 Å random displacement of every atom (so no cache answers it); the time is the median
over --reps calls after two warm-up calls. Every (implementation, system) runs in its own
process, so peak memory (ru_maxrss) is per run. SchNetPack runs in the venv made by
../shared/bench/setup_schnetpack.sh (--spk-python), with its skin list (SPK_SKIN=0.3, its
best setting); it is skipped when that venv is absent. MLPotCalculator keeps freed memory in
the process (mlpot.deploy.calculator.keep_freed_memory); --spk-keep-memory gives SchNetPack the same
glibc settings through the environment. The machine is shared: the load
average is printed with the table, and only ratios from one run should be compared.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.build import molecule

# This script also runs itself inside the SchNetPack venv, where mlpot is not installed:
# mlpot.sim.structures needs only numpy and ASE, so import it from this checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mlpot.sim.structures import silicon, water_box  # noqa: E402

CUTOFF = 5.0  # Å
SPECIES = [1, 6, 8, 14]
DEFAULT_SPK_PYTHON = Path.home() / ".cache" / "schnetpack-venv" / "bin" / "python"


SYSTEMS = {
    "ethanol_9": lambda: molecule("CH3CH2OH"),
    "water_192_pbc": lambda: water_box(4),
    "si_216_pbc": lambda: silicon(3),
    "si_1728_pbc": lambda: silicon(6),
    "si_13824_pbc": lambda: silicon(12),
    "si_110592_pbc": lambda: silicon(24),
}
STANDARD = ["ethanol_9", "water_192_pbc", "si_216_pbc", "si_1728_pbc"]
LARGE = ["si_13824_pbc", "si_110592_pbc"]


def seconds_per_call(atoms, reps: int) -> float:
    """Median seconds of `reps` energy+force calls (after two warm-up calls), each after a
    0.01 Å random displacement from the starting positions."""
    rng = np.random.default_rng(0)
    base = atoms.get_positions().copy()
    times = []
    for _ in range(reps + 2):
        atoms.set_positions(base + rng.normal(scale=0.01, size=base.shape))
        t0 = time.perf_counter()
        atoms.get_forces()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[2:]))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


# --- models ------------------------------------------------------------------------------
def export_mlpot_models(folder: Path) -> dict[str, Path]:
    """SchNet 128/128/3/20 as exported by default ("schnet": tabulated filters), with the fused
    network kernels ("schnet_fused") and the plain-PyTorch reference kernels ("schnet_torch"), and
    wACSF (defaults), cutoff 5 Å, random weights, float32 files."""
    import torch

    from mlpot.deploy.export import export_model
    from mlpot.model.config import ModelConfig, build_potential

    paths = {}
    schnet = ModelConfig(representation="schnet", cutoff=CUTOFF, n_atom_basis=128, n_filters=128,
                         n_interactions=3, n_rbf=20)
    configs = {"schnet": (schnet, "auto"), "schnet_fused": (schnet, "fused"), "schnet_torch": (schnet, "reference"),
               "wacsf": (ModelConfig(representation="wacsf", cutoff=CUTOFF), "reference")}
    for name, (cfg, kernels) in configs.items():
        torch.manual_seed(0)
        paths[name] = folder / f"{name}.pt"
        export_model(build_potential(cfg, SPECIES), paths[name], "float32", training_data="random weights",
                     kernels=kernels)
    # the same SchNet and wACSF, compiled by AOTInductor into .pt2 packages
    for name, cfg in (("schnet_pt2", schnet), ("wacsf_pt2", configs["wacsf"][0])):
        try:
            from mlpot.deploy.pt2 import export_pt2

            torch.manual_seed(0)
            paths[name] = folder / f"{name}.pt2"
            export_pt2(build_potential(cfg, SPECIES), paths[name], "float32", training_data="random weights",
                       lammps=False)   # ASE only
        except Exception as exc:   # noqa: BLE001 — reported, the other columns still run
            print(f"no {name} column: {str(exc).splitlines()[0][:300]}", file=sys.stderr)
            paths.pop(name, None)
    return paths


def schnetpack_calculator_factory(folder: Path):
    """SchNetPack's SpkCalculator on its SchNet of the same architecture (reference script)."""
    import schnetpack.transform as trn
    import torch
    from schnetpack.interfaces.ase_interface import SpkCalculator
    from schnetpack_schnet import schnetpack_schnet

    model = schnetpack_schnet(CUTOFF, postprocessors=[trn.CastTo64()])
    path = folder / "spk_model.pt"
    torch.save(model, path)

    def neighbors():
        nl = trn.MatScipyNeighborList(cutoff=CUTOFF)
        if os.environ.get("SPK_SKIN"):
            nl = trn.SkinNeighborList(nl, cutoff_skin=float(os.environ["SPK_SKIN"]))
        return nl
    return lambda: SpkCalculator(model_file=str(path), neighbor_list=neighbors(), energy_unit="eV",
                                 position_unit="Ang", dtype=torch.float32)


def worker(args) -> int:
    """One implementation on one system in this process; prints one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        if args.worker == "schnetpack":
            make = schnetpack_calculator_factory(Path(folder))
        else:
            from mlpot.deploy.calculator import MLPotCalculator
            make = lambda: MLPotCalculator(args.model)  # noqa: E731
        atoms = SYSTEMS[args.system]()
        atoms.calc = make()
        seconds = seconds_per_call(atoms, args.reps)
    print(json.dumps({"system": args.system, "atoms": len(atoms), "s_per_call": seconds,
                      "peak_rss_mb": peak_rss_mb(), "threads": torch.get_num_threads()}), flush=True)
    return 0


# --- driver ------------------------------------------------------------------------------
def run_worker(python: str, impl: str, system: str, reps: int, threads: int, model: Path | None,
               extra_env: dict[str, str] | None = None) -> dict | None:
    cmd = [python, str(Path(__file__).resolve()), "--worker", impl, "--system", system,
           "--reps", str(reps), "--threads", str(threads)]
    if model is not None:
        cmd += ["--model", str(model)]
    env = dict(os.environ, **(extra_env or {}))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        print(f"  {impl} on {system} failed (exit {done.returncode}): {done.stderr.strip()[-400:]}",
              file=sys.stderr)
        return None
    return json.loads(lines[-1])


def available_memory_mb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) / 1024.0
    return float("inf")


def format_table(rows: list[dict], have_spk: bool) -> str:
    head = ("| system | atoms | mlpot SchNet s/call | SchNet .pt2 s/call | .pt / .pt2 | SchNetPack s/call | "
            "SchNetPack / mlpot | SchNetPack / .pt2 | "
            "fused network s/call | SchNetPack / fused | PyTorch kernels s/call | "
            "wACSF s/call | wACSF .pt2 s/call | SchNet µs/atom | peak MB |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        def fmt(x, pattern="{:.4f}"):
            return "—" if x is None else pattern.format(x)
        ratio = (r["spk"] / r["schnet"]) if (r.get("spk") and r.get("schnet")) else None
        ratio_fused = (r["spk"] / r["schnet_fused"]) if (r.get("spk") and r.get("schnet_fused")) else None
        per_atom = 1e6 * r["schnet"] / r["atoms"] if r.get("schnet") else None
        pt2 = (r["schnet"] / r["schnet_pt2"]) if (r.get("schnet") and r.get("schnet_pt2")) else None
        ratio_pt2 = (r["spk"] / r["schnet_pt2"]) if (r.get("spk") and r.get("schnet_pt2")) else None
        lines.append(f"| {r['system']} | {r['atoms']} | {fmt(r.get('schnet'))} | {fmt(r.get('schnet_pt2'))} | "
                     f"{fmt(pt2, '{:.2f}×')} | {fmt(r.get('spk'))} | {fmt(ratio, '{:.2f}×')} | "
                     f"{fmt(ratio_pt2, '{:.2f}×')} | {fmt(r.get('schnet_fused'))} | {fmt(ratio_fused, '{:.2f}×')} | "
                     f"{fmt(r.get('schnet_torch'))} | {fmt(r.get('wacsf'))} | {fmt(r.get('wacsf_pt2'))} | "
                     f"{fmt(per_atom, '{:.1f}')} | "
                     f"{fmt(r.get('peak_mb'), '{:.0f}')} |")
    if not have_spk:
        lines.append("(SchNetPack venv not found: its columns are empty)")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("systems", nargs="*", help=f"default: {' '.join(STANDARD)}")
    ap.add_argument("--large", action="store_true", help=f"also {' '.join(LARGE)} (time per atom, peak memory)")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--large-reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1, help="alternate the implementations this many times")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--large-torch", action="store_true", help="also run the PyTorch kernels on the large systems")
    ap.add_argument("--spk-python", default=str(DEFAULT_SPK_PYTHON))
    ap.add_argument("--spk-skin", default="0.3")
    ap.add_argument("--spk-keep-memory", action="store_true",
                    help="give SchNetPack glibc's keep-freed-memory settings too (MALLOC_MMAP_MAX_=0, "
                         "MALLOC_TRIM_THRESHOLD_), as MLPotCalculator sets them in-process")
    ap.add_argument("--json", help="also write the rows as JSON here")
    ap.add_argument("--worker", choices=["mlpot", "schnetpack"], help=argparse.SUPPRESS)
    ap.add_argument("--system", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)

    systems = args.systems or STANDARD + (LARGE if args.large else [])
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        ap.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    have_spk = Path(args.spk_python).is_file()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mlpot_md_speed_") as folder:
        rows = measure(args, systems, export_mlpot_models(Path(folder)), have_spk)
    print_report(args, rows, have_spk, load_before)
    return 0


def measure(args, systems: list[str], models: dict[str, Path], have_spk: bool) -> list[dict]:
    """One row per system: median s/call of each implementation over --rounds, peak memory."""
    spk_env = {"SPK_SKIN": args.spk_skin, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    if args.spk_keep_memory:
        spk_env.update({"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2 ** 31 - 1)})
    rows = []
    for system in systems:
        large = system in LARGE
        reps = args.large_reps if large else args.reps
        if system == "si_110592_pbc" and rows and rows[-1].get("peak_mb") and rows[-1]["system"] == "si_13824_pbc":
            need = rows[-1]["peak_mb"] * 110592 / 13824
            if need > 0.8 * available_memory_mb():
                print(f"skipping {system}: ~{need:.0f} MB needed (from Si 13824), "
                      f"{available_memory_mb():.0f} MB available", file=sys.stderr)
                continue
        runs: dict[str, list[dict]] = {"schnet": [], "schnet_pt2": [], "schnet_fused": [], "schnet_torch": [],
                                       "spk": [], "wacsf": [], "wacsf_pt2": []}
        for _ in range(args.rounds):
            r = run_worker(sys.executable, "mlpot", system, reps, args.threads, models["schnet"])
            runs["schnet"] += [r] if r else []
            if "schnet_pt2" in models:
                r = run_worker(sys.executable, "mlpot", system, reps, args.threads, models["schnet_pt2"])
                runs["schnet_pt2"] += [r] if r else []
            if not large or args.large_torch:
                r = run_worker(sys.executable, "mlpot", system, reps, args.threads, models["schnet_torch"])
                runs["schnet_torch"] += [r] if r else []
            r = run_worker(sys.executable, "mlpot", system, reps, args.threads, models["schnet_fused"])
            runs["schnet_fused"] += [r] if r else []
            if have_spk and system != "si_110592_pbc":
                r = run_worker(args.spk_python, "schnetpack", system, reps, args.threads, None, spk_env)
                runs["spk"] += [r] if r else []
            if system != "si_110592_pbc":  # wACSF's triplet tensors at 110k atoms: beyond 24 GB
                r = run_worker(sys.executable, "mlpot", system, reps, args.threads, models["wacsf"])
                runs["wacsf"] += [r] if r else []
                if "wacsf_pt2" in models:
                    r = run_worker(sys.executable, "mlpot", system, reps, args.threads, models["wacsf_pt2"])
                    runs["wacsf_pt2"] += [r] if r else []
        row = {"system": system, "atoms": len(SYSTEMS[system]())}
        for key, results in runs.items():
            if results:
                row[key] = float(np.median([r["s_per_call"] for r in results]))
                row[key + "_rounds"] = [r["s_per_call"] for r in results]
        if runs["schnet"]:
            row["peak_mb"] = max(r["peak_rss_mb"] for r in runs["schnet"])
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def print_report(args, rows: list[dict], have_spk: bool, load_before) -> None:
    print(f"\n{time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} cores, {args.threads} torch threads, "
          f"load average {load_before[0]:.2f} before / {os.getloadavg()[0]:.2f} after, "
          f"SchNetPack with SPK_SKIN={args.spk_skin}"
          f"{' and kept freed memory' if args.spk_keep_memory else ''}, median of {args.rounds} round(s)\n")
    print(format_table(rows, have_spk))
    if args.rounds > 1 and have_spk:
        print("\nSchNetPack / mlpot SchNet per round (round k of each side):")
        for r in rows:
            mine, theirs = r.get("schnet_rounds", []), r.get("spk_rounds", [])
            ratios = [b / a for a, b in zip(mine, theirs)]
            if ratios:
                print(f"  {r['system']}: " + ", ".join(f"{x:.2f}×" for x in ratios)
                      + f" (range {min(ratios):.2f}–{max(ratios):.2f}×)")
    by_name = {r["system"]: r for r in rows}
    if "si_1728_pbc" in by_name and "si_13824_pbc" in by_name and by_name["si_1728_pbc"].get("schnet"):
        a, b = by_name["si_1728_pbc"], by_name["si_13824_pbc"]
        print(f"\nSchNet time per atom, Si 13824 / Si 1728: {b['schnet'] / b['atoms'] / (a['schnet'] / a['atoms']):.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
