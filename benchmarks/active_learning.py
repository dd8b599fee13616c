"""Active learning vs random sampling on ethanol with GFN2-xTB (tblite), and what the committee's
uncertainty tells.

    python benchmarks/active_learning.py --out runs/al_bench --json benchmarks/results/active_learning.json

1. Reference: the demo's GFN2-xTB minimum, normal modes and its random-sampling pool (1200
   Langevin MD snapshots and 600 normal-mode samples at 500 K, shuffled). An independent test
   set from the same distribution (new seeds): 60 MD + 60 normal-mode frames.
2. Random sampling: the demo's SchNet and its earlier training recipe (earlier_demo_recipe) on
   the first n structures of the pool (90 % training, 10 % validation), n = --sizes, with as many
   optimizer steps as the demo (and its 330 s cap); n = 1700 is the demo as it was.
3. Active learning: `mlpot learn` (committee of --ensemble of the same SchNet) from --n-seed
   normal-mode samples at 300 K, MD at --temperatures.
   Its data (the first n structures of its store) is also trained exactly as the random-sampling
   models ("learned"), so that the two ways of choosing data compare with the same training.
   And ("recipe") the first n structures of the random pool and of the active-learning store,
   each trained with mlpot's default recipe (as the loop's members) for the same time.
Each point: test energy and force MAE, and the harmonic frequency MAE and worst mode against
GFN2-xTB (modes paired by eigenvector overlap) after optimising with the model (the committee
mean for active learning). "reference_calls" here = structures labelled for training and
validation; the MD steps that produced the random pool are not counted
(benchmarks/learn_vs_demo.py counts every GFN2-xTB calculation).
4. The final committee's uncertainty at the minimum and at rattles of 0.1, 0.2, 0.4 Å, its rank
   correlation with the true force error on the test set, and the cost of a committee MD step
   against one model's.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np


def reference(out: Path, log):
    from mlpot.demo.labelling_stage import make_reference
    from mlpot.demo.settings import DemoSettings
    from mlpot.sim.labelling import default_calculator, sample_md, sample_normal_modes, write_reference

    cached = out / "reference.pkl"
    if cached.is_file():
        return pickle.loads(cached.read_bytes())
    settings = DemoSettings(force=True)
    ref = make_reference(settings, out, log)
    calc = default_calculator("GFN2-xTB")
    test = (sample_md(ref.minimum, calc, 500.0, 60, interval=20, seed=11, progress=False)
            + sample_normal_modes(ref.minimum, calc, 500.0, 60, modes=ref.modes, seed=12, progress=False))
    write_reference(out / "test.db", test, calc, force=True, settings={"test": "MD + normal modes, 500 K"})
    seed = sample_normal_modes(ref.minimum, calc, 300.0, 200, modes=ref.modes, seed=13, progress=False)
    write_reference(out / "seed_pool.db", seed, calc, force=True, settings={"seed": "normal modes, 300 K"})
    cached.write_bytes(pickle.dumps(ref))
    return ref


def harmonic_errors(calc, ref) -> dict:
    from mlpot.demo.analysis import harmonic_analysis, harmonic_comparison
    from mlpot.sim.scripting import build_molecule

    model = harmonic_analysis(build_molecule("CH3CH2OH"), calc, fmax=1e-3, max_steps=1000, align_to=ref.minimum)
    return harmonic_comparison(ref.modes, ref.intensities, model)


def random_arm(out: Path, ref, sizes, train_time: float, log) -> list:
    return demo_recipe_models(out, ref, ref.store, sizes, train_time, "random", log)


def learned_data_arm(out: Path, ref, sizes, train_time: float, log) -> list:
    """The data active learning collected (its store's first n rows: the seed and the frames
    labelled up to some iteration), trained exactly as the random-sampling models."""
    from mlpot.data.store import read_store, write_store

    rows = []
    for n in sizes:
        store = out / f"learned_{n}.db"
        structures = read_store(out / "learn" / "data.db")
        if len(structures) < n:
            log(f"active learning labelled {len(structures)} < {n} structures: skipped")
            continue
        write_store(store, structures[:n], force=True)
        rows += demo_recipe_models(out, ref, store, [n], train_time, "learned", log)
    return rows


def default_recipe_models(out: Path, ref, n: int, train_time: float, log) -> list:
    """The first n structures of the random pool and of the active-learning store, each trained
    with mlpot's default recipe (as the learning loop's members, cold start, one model) for
    train_time s: the two ways of choosing data with the loop's own training."""
    from mlpot import MLPotCalculator
    from mlpot.data.store import read_store, write_store
    from mlpot.demo.analysis import test_errors
    from mlpot.demo.learn_stage import model_section, training_section
    from mlpot.demo.settings import DemoSettings
    from mlpot.deploy.export import export_model
    from mlpot.train import train
    from mlpot.train.checkpoint import load_potential
    from mlpot.train.config import config_from_dict

    settings = DemoSettings()
    test = read_store(out / "test.db")
    rows = []
    for arm, source in (("random_default_recipe", ref.store), ("learned_default_recipe", out / "learn" / "data.db")):
        store = out / f"{arm}_{n}.db"
        write_store(store, read_store(source)[:n], force=True)
        folder = out / f"{arm}_{n}"
        cfg = config_from_dict({"data": {"train": str(store), "n_train": 0.9, "n_val": 0.1, "n_test": 0},
                                "model": model_section(settings), "training": training_section(settings, train_time),
                                "output": str(folder)})
        started = time.monotonic()
        train(cfg, force=True, quiet=True)
        export_model(load_potential(folder / "best.ckpt"), folder / "model.pt", "float64")
        calc = MLPotCalculator(folder / "model.pt")
        row = {"arm": arm, "reference_calls": n, "train_time_s": time.monotonic() - started,
               **test_errors(calc, test), **harmonic_errors(calc, ref)}
        log(json.dumps(row))
        rows.append(row)
    return rows


def earlier_demo_recipe(training, n_train: int, batch_size: int) -> None:
    """The demo's training recipe until 2026-12-03 (these runs): exponential decay to 0.05x over
    the run, per-structure energy weight 0.1, no stage two, and as many optimizer steps as 120
    epochs of the demo's 1530 structures (within the time cap)."""
    training.max_epochs = round(120 * 1530 / n_train)
    training.scheduler, training.decay_rate = "exponential", 0.05
    training.decay_steps = -(-n_train // batch_size) * training.max_epochs
    training.energy_loss, training.energy_weight, training.stage_two_start = "per_structure", 0.1, None


def demo_recipe_models(out: Path, ref, store: Path, sizes, train_time: float, arm: str, log) -> list:
    from mlpot import MLPotCalculator
    from mlpot.data.store import read_store
    from mlpot.demo.analysis import test_errors
    from mlpot.demo.settings import DemoSettings
    from mlpot.demo.train_stage import training_config
    from mlpot.deploy.export import export_model
    from mlpot.train import train
    from mlpot.train.checkpoint import load_potential

    test = read_store(out / "test.db")
    rows = []
    for n in sizes:
        settings = DemoSettings(force=True, max_train_time=train_time)
        cfg = training_config(settings, store, out / f"{arm}_{n}")
        n_val = max(2, round(0.1 * n))
        cfg.data.n_train, cfg.data.n_val, cfg.data.n_test = n - n_val, n_val, 0
        earlier_demo_recipe(cfg.training, cfg.data.n_train, settings.batch_size)
        started = time.monotonic()
        train(cfg, force=True, quiet=True)
        model = out / f"{arm}_{n}" / "model.pt"
        export_model(load_potential(out / f"{arm}_{n}" / "best.ckpt"), model, "float64")
        calc = MLPotCalculator(model)
        row = {"arm": arm, "reference_calls": n, "train_time_s": time.monotonic() - started,
               **test_errors(calc, test), **harmonic_errors(calc, ref)}
        log(json.dumps(row))
        rows.append(row)
    return rows


def learn_arm(out: Path, ref, args, log) -> list:
    from mlpot import MLPotCalculator
    from mlpot.data.store import read_store, write_store
    from mlpot.demo.settings import DemoSettings
    from mlpot.learn import ActiveLearning
    from mlpot.learn.config import learn_config_from_dict
    from mlpot.sim.labelling import default_calculator

    seed_file = out / "seed.db"
    write_store(seed_file, read_store(out / "seed_pool.db")[:args.n_seed], force=True)
    settings = DemoSettings()
    raw = {"learn": {"seed_data": str(seed_file), "test": str(out / "test.db"),
                     "temperatures": args.temperatures, "md_steps": args.md_steps, "sample_every": 10,
                     "normal_modes": args.normal_modes,
                     "trust_lo": args.trust_lo, "trust_hi": args.trust_hi, "max_new": args.max_new,
                     "max_iterations": args.iterations, "converged_fraction": 0.0, "threads": 1,
                     "seed": args.learn_seed},
           "model": {"representation": "schnet", "cutoff": settings.cutoff, "n_atom_basis": settings.n_atom_basis,
                     "n_filters": settings.n_filters, "n_interactions": settings.n_interactions,
                     "n_rbf": settings.n_rbf, "dipole": True},
           "training": {"ensemble": args.ensemble, "max_time": args.learn_train_time, "num_threads": 1,
                        "seed": args.learn_seed,
                        "batch_size": settings.batch_size, "patience": None,
                        "dipole_weight": settings.dipole_weight},
           "output": str(out / "learn")}
    cfg = learn_config_from_dict(raw)
    loop = ActiveLearning(cfg, calculator=default_calculator("GFN2-xTB"), resume=True, force=False, log=log)
    state = loop.run()
    rows = []
    for r in state["history"]:
        if "models" not in r:
            continue
        row = {"arm": "learn", "iteration": r["iteration"], "reference_calls": r["n_reference"],
               "loop_reference_calls": r.get("reference_calls") or 0,
               "energy_mae_meV": r["test_energy_mae_meV"], "forces_mae_meV_per_A": r["test_forces_mae_meV_per_A"],
               "member_forces_mae_meV_per_A": r["test_member_forces_mae_meV_per_A"],
               "rank_correlation": r["test_rank_correlation"],
               "fraction_above_lo": r.get("fraction_above_lo"), "train_time_s": r.get("train_time_s"),
               **harmonic_errors(MLPotCalculator(r["models"]), ref)}
        log(json.dumps(row))
        rows.append(row)
    return rows


def uncertainty_checks(out: Path, ref, models, log) -> dict:
    import torch

    from mlpot import MLPotCalculator
    from mlpot.data.store import read_store
    from mlpot.learn.errors import committee_errors
    from mlpot.sim.labelling import default_calculator

    torch.set_num_threads(1)
    calc, gfn = MLPotCalculator(models), default_calculator("GFN2-xTB")
    rattles = {}
    for amplitude in (0.0, 0.1, 0.2, 0.4):
        u, err = [], []
        for k in range(10):
            atoms = ref.minimum.copy()
            atoms.rattle(amplitude, seed=100 + k)
            atoms.calc = calc
            forces = atoms.get_forces()
            u.append(calc.results["uncertainty"])
            atoms.calc = gfn
            err.append(float(np.linalg.norm(forces - atoms.get_forces(), axis=1).max()))
            if amplitude == 0.0:
                break
        rattles[f"{amplitude:.1f}"] = {"uncertainty": float(np.mean(u)), "max_force_error": float(np.mean(err))}
    test = committee_errors(models, read_store(out / "test.db"))
    atoms = ref.minimum.copy()
    timing = {}
    for label, c in (("one model", MLPotCalculator(models[0])), (f"committee of {len(models)}", calc)):
        atoms.calc = c
        atoms.rattle(0.01, seed=1)
        atoms.get_forces()
        started = time.perf_counter()
        for k in range(200):
            atoms.positions[0, 0] += 1e-4 * (-1) ** k
            atoms.get_forces()
        timing[label] = (time.perf_counter() - started) / 200 * 1e3
    result = {"rattles": rattles, "test_rank_correlation": test["test_rank_correlation"],
              "ms_per_call": timing,
              "committee_cost_ratio": timing[f"committee of {len(models)}"] / timing["one model"]}
    log(json.dumps(result))
    return result


def add_learn_arguments(parser, max_new: int, md_steps: int, normal_modes: int = 0) -> None:
    """The options of learn_arm (`mlpot learn` on ethanol from normal-mode seeds)."""
    parser.add_argument("--learn-train-time", type=float, default=60.0, help="s per committee member and iteration")
    parser.add_argument("--ensemble", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--n-seed", type=int, default=20)
    parser.add_argument("--max-new", type=int, default=max_new)
    parser.add_argument("--md-steps", type=int, default=md_steps)
    parser.add_argument("--normal-modes", type=int, default=normal_modes,
                        help="learn.normal_modes: samples per temperature around the committee's minimum")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 500.0, 700.0])
    parser.add_argument("--trust-lo", type=float, default=0.05)
    parser.add_argument("--trust-hi", type=float, default=0.5)
    parser.add_argument("--learn-seed", type=int, default=0, help="learn.seed and training.seed")


def log(message) -> None:
    print(message, flush=True)


def start(args, log) -> tuple:
    """One torch thread; the output folder and the (cached) GFN2-xTB reference in it."""
    import torch

    torch.set_num_threads(1)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    return out, reference(out, log)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/al_bench")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--only", choices=("random", "learn", "learned", "recipe", "uncertainty"), action="append")
    parser.add_argument("--recipe-n", type=int, default=429, help="structures for --only recipe")
    parser.add_argument("--recipe-time", type=float, default=480.0, help="s of training for --only recipe")
    parser.add_argument("--learned-sizes", type=int, nargs="+", default=[200, 440],
                        help="train the demo's recipe on the first n structures active learning collected")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 400, 850, 1700])
    parser.add_argument("--train-time", type=float, default=330.0, help="s per random-sampling model (demo: 330)")
    add_learn_arguments(parser, max_new=60, md_steps=400)
    args = parser.parse_args(argv)
    out, ref = start(args, log)
    only = set(args.only or ("random", "learn", "learned", "recipe", "uncertainty"))
    results = {"date": time.strftime("%Y-%m-%d"), "settings": vars(args)}
    if "random" in only:
        results["random"] = random_arm(out, ref, args.sizes, args.train_time, log)
    if "learn" in only:
        results["learn"] = learn_arm(out, ref, args, log)
    if "learned" in only:
        results["learned"] = learned_data_arm(out, ref, args.learned_sizes, args.train_time, log)
    if "recipe" in only:
        results["recipe"] = default_recipe_models(out, ref, args.recipe_n, args.recipe_time, log)
    if "uncertainty" in only:
        committee = json.loads((out / "learn" / "committee.json").read_text())["models"]
        results["uncertainty"] = uncertainty_checks(out, ref, committee, log)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
