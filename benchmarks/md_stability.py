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
- engines: `--engine ase` (MLPotCalculator, default) or `--engine lammps` (the mlpot plugin, fix
  nvt: a Nosé–Hoover chain of 3 with the same damping; a molecule in a periodic box 40 Å wider than
  itself; frames from an unwrapped dump, checked as above).
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
    from mlpot.deploy.calculator import MLPotCalculator

    path = Path(model)
    if path.suffix == ".ckpt":
        from mlpot.deploy.export import export_model
        from mlpot.train.checkpoint import load_potential

        exported = workdir / f"{path.parent.name}_{path.stem}.pt"
        export_model(load_potential(path), exported, "float32")
        path = exported
    return MLPotCalculator(str(path))


# --- one run ---------------------------------------------------------------------------
class Monitor:
    """Fu et al.'s collapse criteria over the frames of one run, fed every check_fs: bonded pairs
    off by more than BOND_TOLERANCE (molecules), or a 1 ps window's RDF MAE above RDF_LIMIT (water)."""

    def __init__(self, atoms, reference: np.ndarray, kind: str, check_fs: float):
        self.kind, self.numbers = kind, atoms.numbers
        self.window = int(round(1000 / check_fs))      # frames per 1 ps (water)
        self.frames, self.worst, self.collapsed_at, self.reason = [], 0.0, None, ""
        self.reference = reference
        if kind == "molecule":
            self.pairs, self.lengths0 = bonded_pairs(atoms)
        else:
            self.cell = np.diag(atoms.cell.array)
            self.ref_rdfs = partial_rdfs(reference, atoms.numbers, self.cell)

    def add(self, positions: np.ndarray, time_ps: float) -> bool:
        """Check one frame (Å, unwrapped) at time_ps; True once the run has collapsed."""
        if self.kind == "molecule":
            deviation = float(np.max(np.abs(bond_lengths(positions, self.pairs) - self.lengths0)))
            self.worst = max(self.worst, deviation)
            if deviation > BOND_TOLERANCE:
                return self.collapse(time_ps, f"bond off by {deviation:.2f} Å")
            if len(self.frames) < 20000:
                self.frames.append(positions)
            return False
        self.frames.append(positions)
        if len(self.frames) == self.window:
            mae = rdf_mae(partial_rdfs(np.stack(self.frames), self.numbers, self.cell), self.ref_rdfs)
            self.worst = max(self.worst, mae)
            self.frames = []
            if mae > RDF_LIMIT:
                return self.collapse(time_ps, f"RDF MAE {mae:.2f} > {RDF_LIMIT}")
        return False

    def collapse(self, time_ps: float, reason: str) -> bool:
        self.collapsed_at, self.reason = time_ps, reason
        return True

    def record(self, time_ps: float) -> dict:
        record = {"stable_ps": self.collapsed_at if self.collapsed_at is not None else time_ps,
                  "collapsed": self.collapsed_at is not None, "reason": self.reason}
        if self.kind == "molecule":
            record["max_bond_deviation_A"] = self.worst
            if self.frames:
                record["h_r_mae"] = histogram_mae(distance_histogram(np.stack(self.frames)),
                                                  distance_histogram(self.reference))
        else:
            record["max_window_rdf_mae"] = self.worst
        return record


def run_one(atoms, reference: np.ndarray, kind: str, calc, seed: int, temperature: float, timestep: float,
            time_ps: float, check_fs: float, log=print) -> dict:
    """NVT MD through the ASE calculator until time_ps or the collapse; the record of the run."""
    from ase import units
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    atoms = atoms.copy()
    atoms.calc = calc
    thermalize_momenta(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    Stationary(atoms)
    dyn = NoseHooverChainNVT(atoms, timestep * units.fs, temperature_K=temperature,
                             tdamp=THERMOSTAT_DAMPING * units.fs)
    check_every = max(1, int(round(check_fs / timestep)))
    n_steps = int(round(time_ps * 1000 / timestep))
    monitor = Monitor(atoms, reference, kind, check_fs)
    started = time.perf_counter()
    step = 0
    while step < n_steps:
        try:
            dyn.run(check_every)
        except ValueError as exc:          # overlapping atoms, NaN positions: the run has collapsed
            monitor.collapse(step * timestep / 1000, f"stopped: {str(exc)[:120]}")
            break
        step += check_every
        if monitor.add(atoms.positions.copy(), step * timestep / 1000):
            break
        if step % max(check_every, int(round(10000 / timestep))) == 0:   # every 10 ps
            log(f"  {step * timestep / 1000:.0f} ps, worst so far {monitor.worst:.3g}, "
                f"{step / (time.perf_counter() - started):.0f} steps/s")
    wall = time.perf_counter() - started
    return {"seed": seed, "engine": "ase", **monitor.record(time_ps), "steps": step, "wall_s": round(wall, 1),
            "steps_per_s": round(step / wall, 1) if wall > 0 else None}


LAMMPS_INPUT = """units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style mlpot
pair_coeff * * {model} {symbols}
velocity all create {temperature} {seed} mom yes rot yes dist gaussian
fix thermostat all nvt temp {temperature} {temperature} {damp}
timestep {timestep}
dump frames all custom {every} frames.dump id type xu yu zu
dump_modify frames sort id format float %.10g
thermo {thermo}
run {steps}
"""


def run_one_lammps(atoms, reference: np.ndarray, kind: str, model: Path, seed: int, temperature: float,
                   timestep: float, time_ps: float, check_fs: float, folder: Path, log=print) -> dict:
    """The same run in LAMMPS with the mlpot plugin (`fix nvt`: a Nosé–Hoover chain of 3, damping
    THERMOSTAT_DAMPING); a molecule sits in a periodic box 3 cutoffs wider than itself (no image
    within reach). Frames every check_fs from an unwrapped dump, checked afterwards as run_one's."""
    from mlpot.lammps import build_plugin, run_lammps, write_lammps_data
    from mlpot.learn.explore_lammps import BLOW_UP, read_dump_positions

    folder.mkdir(parents=True, exist_ok=True)
    work = atoms.copy()
    if kind == "molecule":
        work.center(vacuum=20.0)
        work.pbc = True
    work.set_cell(work.cell.standard_form()[0], scale_atoms=True)
    symbols = sorted(set(work.get_chemical_symbols()))
    write_lammps_data(folder / "data.lmp", work, symbols)
    check_every = max(1, int(round(check_fs / timestep)))
    n_steps = int(round(time_ps * 1000 / timestep))
    (folder / "in.md").write_text(LAMMPS_INPUT.format(
        model=Path(model).resolve(), symbols=" ".join(symbols), temperature=temperature, seed=1 + seed,
        damp=THERMOSTAT_DAMPING / 1000, timestep=timestep / 1000, every=check_every, thermo=10 * check_every * 100,
        steps=n_steps))
    started = time.perf_counter()
    ended = ""
    try:
        run_lammps(folder / "in.md", plugin=build_plugin(), cwd=folder, log="log.lammps", threads=1)
    except RuntimeError as exc:
        if not any(sign in str(exc) for sign in BLOW_UP):
            raise
        ended = f"LAMMPS stopped: {str(exc)[:120]}"
    wall = time.perf_counter() - started
    monitor = Monitor(work, reference, kind, check_fs)
    frames = read_dump_positions(folder / "frames.dump", len(work))
    step = 0
    for step in sorted(frames):
        if step and monitor.add(frames[step], step * timestep / 1000):
            break
    if monitor.collapsed_at is None and ended:
        monitor.collapse(step * timestep / 1000, ended)
    (folder / "frames.dump").unlink(missing_ok=True)
    ran = step if ended else n_steps
    log(f"  LAMMPS: {ran} steps in {wall:.0f} s")
    return {"seed": seed, "engine": "lammps", **monitor.record(time_ps), "steps": ran, "wall_s": round(wall, 1),
            "steps_per_s": round(ran / wall, 1) if wall > 0 else None}


def summary_line(system: str, model: str, records: list[dict], time_ps: float) -> str:
    stable = [r["stable_ps"] for r in records]
    return (f"{system:<14} {Path(model).parent.name or model:<24} seeds {len(records)}: stable median "
            f"{np.median(stable):.1f} ps, worst {min(stable):.1f} ps of {time_ps:g}; "
            f"{sum(r['collapsed'] for r in records)} collapsed")


def merge_results(path: Path, entries: list[dict]) -> None:
    old = json.loads(path.read_text())["runs"] if path.is_file() else []
    key = lambda e: (e["system"], e["model"], e.get("engine", "ase"), e["seed"])  # noqa: E731
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
    parser.add_argument("--engine", choices=("ase", "lammps"), default="ase",
                        help="ase (MLPotCalculator) or lammps (the mlpot plugin, one rank)")
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
            print(f"{args.system}, {args.model}, {args.engine}, seed {seed}: {protocol}", flush=True)
            say = lambda m: print(m, flush=True)  # noqa: E731
            if args.engine == "lammps":
                record = run_one_lammps(atoms, reference, kind, Path(calc.model_path), seed, protocol["temperature"],
                                        protocol["timestep"], protocol["time_ps"], protocol["check_fs"],
                                        Path(tmp) / f"lammps_{seed}", log=say)
            else:
                record = run_one(atoms, reference, kind, calc, seed, protocol["temperature"], protocol["timestep"],
                                 protocol["time_ps"], protocol["check_fs"], log=say)
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
