"""MD stability as Fu et al. measure it ("Forces are not enough", TMLR 2023; their code:
kyonofx/MDsim): how long NVT MD with a trained model stays physical, through the ASE calculator.

    .venv/bin/python benchmarks/md_stability.py --system ethanol --model runs/accuracy/schnet_ethanol/best.ckpt
    .venv/bin/python benchmarks/md_stability.py --system water --model runs/accuracy/schnet_water/best.ckpt \
        --seeds 0 1 --time-ps 100

Protocols (defaults; --time-ps, --seeds, --temperature override):
- molecules (rMD17 ethanol, malonaldehyde, aspirin; ../shared/data/rmd17, split 01): 500 K,
  0.5 fs, Nosé–Hoover chain (ASE NoseHooverChainNVT, damping 50 fs), 300 ps, from the first
  training frame with Maxwell–Boltzmann velocities of the seed. Collapsed at the first checked
  frame (every 10 fs) where a bonded pair (ASE natural_cutoffs in the first frame) is more than
  0.5 Å longer or shorter than there. Also h(r), the histogram of all interatomic distances
  (0–10 Å, 500 bins, normalised to unit area, Å⁻¹), against that of the rMD17 test frames: MAE
  over the bins × 10 Å (the area between the two curves).
- liquid water (64 H2O, ../shared/data/water_pbc, the 400 DFT cells; the run starts from the
  first): 300 K, 1 fs, the same thermostat, 100 ps. Every 1 ps window (frames every 10 fs) the
  O–O, H–H and H–O radial distribution functions (0–6 Å, 0.01 Å bins, minimum image) are compared
  with those of the 400 cells: MAE = 6 Å × mean |g − g_ref| (Fu et al.'s form); collapsed at the
  first window whose largest MAE exceeds 3.0. Positions are not wrapped during MD (mlpot's
  neighbour list takes unwrapped positions; the RDF wraps them).
Reported per run: stable time (ps; the full length if it never collapsed), the final h(r) or
the largest window RDF MAE, wall time and steps per second. JSON: benchmarks/results/
md_stability_<date>.json (merged by system, model and seed).
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
MOLECULES = ("ethanol", "malonaldehyde", "aspirin")
PROTOCOL = {   # temperature K, time step fs, length ps, collapse check every (fs)
    "molecule": {"temperature": 500.0, "timestep": 0.5, "time_ps": 300.0, "check_fs": 10.0},
    "water": {"temperature": 300.0, "timestep": 1.0, "time_ps": 100.0, "check_fs": 10.0},
}
BOND_TOLERANCE = 0.5     # Å
H_R_MAX, H_R_BINS = 10.0, 500
RDF_R_MAX, RDF_DR, RDF_LIMIT = 6.0, 0.01, 3.0
THERMOSTAT_DAMPING = 50.0   # fs


# --- observables (pure functions) ---------------------------------------------------------
def bonded_pairs(atoms) -> tuple[np.ndarray, np.ndarray]:
    """(pairs [B, 2], lengths [B] Å): atoms closer than the sum of their ASE natural cutoffs."""
    from ase.neighborlist import NeighborList, natural_cutoffs

    nl = NeighborList(natural_cutoffs(atoms), self_interaction=False, bothways=False)
    nl.update(atoms)
    pairs = np.array([(i, j) for i in range(len(atoms)) for j in nl.get_neighbors(i)[0]], dtype=int).reshape(-1, 2)
    return pairs, bond_lengths(atoms.positions, pairs)


def bond_lengths(positions: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return np.linalg.norm(positions[pairs[:, 1]] - positions[pairs[:, 0]], axis=1)


def distance_histogram(frames: np.ndarray) -> np.ndarray:
    """h(r) of frames [T, N, 3] (Å): every pair distance in 0–H_R_MAX Å, H_R_BINS bins, unit area."""
    i, j = np.triu_indices(frames.shape[1], k=1)
    d = np.linalg.norm(frames[:, j] - frames[:, i], axis=-1).ravel()
    hist, _ = np.histogram(d, bins=H_R_BINS, range=(0.0, H_R_MAX), density=True)
    return hist


def histogram_mae(h: np.ndarray, h_ref: np.ndarray) -> float:
    """Area between two h(r) curves: H_R_MAX × mean |h − h_ref| (0 to 2)."""
    return float(H_R_MAX * np.mean(np.abs(h - h_ref)))


def partial_rdfs(frames: np.ndarray, numbers: np.ndarray, lengths: np.ndarray) -> dict:
    """g_ab(r) for (O,O), (H,H), (H,O) of frames [T, N, 3] in an orthorhombic cell of edge lengths
    [3] Å (minimum image), 0–RDF_R_MAX Å in RDF_DR bins, averaged over the frames."""
    edges = np.arange(0.0, RDF_R_MAX + RDF_DR / 2, RDF_DR)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    volume = float(np.prod(lengths))
    out = {}
    for a, b in ((8, 8), (1, 1), (1, 8)):
        ia, ib = np.flatnonzero(numbers == a), np.flatnonzero(numbers == b)
        delta = frames[:, ib][:, None, :, :] - frames[:, ia][:, :, None, :]
        delta -= lengths * np.round(delta / lengths)
        d = np.linalg.norm(delta, axis=-1)
        if a == b:
            d = d[:, ~np.eye(len(ia), dtype=bool)]
        counts, _ = np.histogram(d.ravel(), bins=edges)
        ideal = len(ia) * len(ib) / volume * shell * len(frames)
        out[f"{'HO'[a == 8]}{'HO'[b == 8]}"] = counts / ideal
    return out


def rdf_mae(rdfs: dict, reference: dict) -> float:
    """Fu et al.'s RDF error: RDF_R_MAX × mean |g − g_ref|, the largest over the element pairs."""
    return max(float(RDF_R_MAX * np.mean(np.abs(rdfs[k] - reference[k]))) for k in reference)


# --- systems ----------------------------------------------------------------------------
def load_system(name: str, data: Path):
    """(starting Atoms, reference: frames [T, N, 3] of the test set (molecules) or the data
    (water), kind)."""
    from ase import Atoms
    from ase.io import read

    if name in MOLECULES:
        train = np.load(data / "rmd17" / f"rmd17_{name}_train_01.npz")
        test = np.load(data / "rmd17" / f"rmd17_{name}_test_01.npz")
        atoms = Atoms(numbers=train["nuclear_charges"], positions=train["coords"][0])
        return atoms, test["coords"], "molecule"
    if name == "water":
        frames = read(data / "water_pbc" / "water_192.extxyz", ":")
        atoms = frames[0].copy()
        atoms.calc = None
        return atoms, np.stack([f.positions for f in frames]), "water"
    raise SystemExit(f"--system {name}: choose from {', '.join(MOLECULES + ('water',))}")


def calculator_for(model: str, workdir: Path):
    """MLPotCalculator of a model file, or of a checkpoint exported (float32, default kernels)."""
    from mlpot.calculator import MLPotCalculator

    path = Path(model)
    if path.suffix == ".ckpt":
        from mlpot.export import export_model
        from mlpot.train.checkpoint import load_potential

        exported = workdir / f"{path.parent.name}_{path.stem}.pt"
        export_model(load_potential(path), exported, "float32")
        path = exported
    return MLPotCalculator(str(path))


# --- one run ------------------------------------------------------------------------------
def run_one(atoms, reference: np.ndarray, kind: str, calc, seed: int, temperature: float, timestep: float,
            time_ps: float, check_fs: float, log=print) -> dict:
    """NVT MD until time_ps or the collapse; the record of the run."""
    from ase import units
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    atoms = atoms.copy()
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    Stationary(atoms)
    dyn = NoseHooverChainNVT(atoms, timestep * units.fs, temperature_K=temperature,
                             tdamp=THERMOSTAT_DAMPING * units.fs)
    check_every = max(1, int(round(check_fs / timestep)))
    n_steps = int(round(time_ps * 1000 / timestep))
    window = int(round(1000 / check_fs))            # frames per 1 ps (water)
    if kind == "molecule":
        pairs, lengths0 = bonded_pairs(atoms)
    else:
        cell = np.diag(atoms.cell.array)
        ref_rdfs = partial_rdfs(reference, atoms.numbers, cell)
    frames, worst, collapsed_at, reason = [], 0.0, None, ""
    started = time.perf_counter()
    step = 0
    while step < n_steps:
        try:
            dyn.run(check_every)
        except ValueError as exc:          # overlapping atoms, NaN positions: the run has collapsed
            collapsed_at, reason = step * timestep / 1000, f"stopped: {str(exc)[:120]}"
            break
        step += check_every
        positions = atoms.positions.copy()
        if kind == "molecule":
            deviation = float(np.max(np.abs(bond_lengths(positions, pairs) - lengths0)))
            worst = max(worst, deviation)
            if deviation > BOND_TOLERANCE:
                collapsed_at, reason = step * timestep / 1000, f"bond off by {deviation:.2f} Å"
                break
            if len(frames) < 20000:
                frames.append(positions)
        else:
            frames.append(positions)
            if len(frames) == window:
                mae = rdf_mae(partial_rdfs(np.stack(frames), atoms.numbers, cell), ref_rdfs)
                worst = max(worst, mae)
                frames = []
                if mae > RDF_LIMIT:
                    collapsed_at, reason = step * timestep / 1000, f"RDF MAE {mae:.2f} > {RDF_LIMIT}"
                    break
        if step % max(check_every, int(round(10000 / timestep))) == 0:   # every 10 ps
            log(f"  {step * timestep / 1000:.0f} ps, worst so far {worst:.3g}, "
                f"{step / (time.perf_counter() - started):.0f} steps/s")
    wall = time.perf_counter() - started
    record = {"seed": seed, "stable_ps": collapsed_at if collapsed_at is not None else time_ps,
              "collapsed": collapsed_at is not None, "reason": reason, "steps": step,
              "wall_s": round(wall, 1), "steps_per_s": round(step / wall, 1) if wall > 0 else None}
    if kind == "molecule":
        record["max_bond_deviation_A"] = worst
        if frames:
            record["h_r_mae"] = histogram_mae(distance_histogram(np.stack(frames)), distance_histogram(reference))
    else:
        record["max_window_rdf_mae"] = worst
    return record


def summary_line(system: str, model: str, records: list[dict], time_ps: float) -> str:
    stable = [r["stable_ps"] for r in records]
    return (f"{system:<14} {Path(model).parent.name or model:<24} seeds {len(records)}: stable median "
            f"{np.median(stable):.1f} ps, worst {min(stable):.1f} ps of {time_ps:g}; "
            f"{sum(r['collapsed'] for r in records)} collapsed")


def merge_results(path: Path, entries: list[dict]) -> None:
    old = json.loads(path.read_text())["runs"] if path.is_file() else []
    key = lambda e: (e["system"], e["model"], e["seed"])  # noqa: E731
    merged = {key(e): e for e in old}
    merged.update({key(e): e for e in entries})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": "benchmarks/md_stability.py", "protocol": PROTOCOL,
                                "runs": list(merged.values())}, indent=1) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--system", required=True, help=f"{', '.join(MOLECULES)} or water")
    parser.add_argument("--model", required=True, help="exported model file (.pt) or training checkpoint (.ckpt)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--time-ps", type=float, default=None, help="length of each run (default: the protocol's)")
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--results", default=None, help="JSON (default benchmarks/results/md_stability_<date>.json)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    import tempfile

    import torch

    torch.set_num_threads(args.threads)
    atoms, reference, kind = load_system(args.system, Path(args.data))
    protocol = dict(PROTOCOL[kind])
    protocol["time_ps"] = args.time_ps or protocol["time_ps"]
    protocol["temperature"] = args.temperature or protocol["temperature"]
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        calc = calculator_for(args.model, Path(tmp))
        for seed in args.seeds:
            print(f"{args.system}, {args.model}, seed {seed}: {protocol}", flush=True)
            record = run_one(atoms, reference, kind, calc, seed, protocol["temperature"], protocol["timestep"],
                             protocol["time_ps"], protocol["check_fs"], log=lambda m: print(m, flush=True))
            print(f"  -> {record}", flush=True)
            records.append({"system": args.system, "model": str(args.model), **protocol, **record,
                            "finished": datetime.datetime.now().isoformat(timespec="seconds")})
    print(summary_line(args.system, args.model, records, protocol["time_ps"]))
    if not args.no_save:
        path = Path(args.results or RESULTS / f"md_stability_{datetime.date.today().isoformat()}.json")
        merge_results(path, records)
        print(f"results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
