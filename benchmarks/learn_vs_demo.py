"""`mlpot learn` against the random-sampling demo, counted in GFN2-xTB calculations (issue 16).

    python benchmarks/learn_vs_demo.py --out runs/learn_vs_demo --json benchmarks/results/learn_vs_demo.json

Every calculation of the reference is counted (mlpot.sim.labelling.count_calls): the optimisation,
the finite-difference Hessian, every MD step (not only the snapshots kept) and every label.

1. The demo as it is (`mlpot demo`, seed 0): its GFN2-xTB pool (1200 MD snapshots, one every 10
   steps, and 600 normal-mode samples at 500 K) and its model, trained by the demo's own recipe
   (train_stage.training_config, 400 s). --demo-model reuses the model.pt of an `mlpot demo` run
   with default settings (the pool is the same: the same seeds); otherwise it is trained here.
2. Random sampling as the demo draws it, smaller: n fresh configurations (2/3 MD, 1/3 normal
   modes at 500 K, counted), each set trained by the demo's recipe for as long as the demo.
3. `mlpot learn` (benchmarks/active_learning.py's learn_arm): a seed of normal-mode samples at
   300 K, committees of SchNet, committee MD at several temperatures and normal-mode samples
   around the committee's own minimum (--normal-modes per temperature; 0: MD only), frames in
   the trust range labelled. Each iteration: the committee mean's test errors. At the end, the first n structures
   it collected (--learned-sizes, and all of them) trained by the demo's recipe as in 1 and 2.
All models are tested on the same independent set (benchmarks/active_learning.py: 60 MD + 60
normal-mode frames at 500 K, new seeds), never trained or selected on. Printed: both curves
(test force MAE against GFN2-xTB calculations), and the fewest calculations with which active
learning reaches the demo's test force error, as a fraction of the demo's.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from active_learning import add_learn_arguments, harmonic_errors, learn_arm, log, start


def shared_calls(ref) -> int:
    """The optimisation and the Hessian: every arm needs them (the normal modes)."""
    return ref.calls["optimisation"] + ref.calls["hessian"]


def demo_recipe(out: Path, ref, store: Path, n: int | None, train_time: float, name: str, log) -> dict:
    """The demo's training (its settings, 10 % validation, no test split) on the first n
    structures of store (all when None); errors of the exported float64 model on the test set."""
    from mlpot.data.store import read_store, write_store
    from mlpot.demo.settings import DemoSettings
    from mlpot.demo.train_stage import training_config
    from mlpot.deploy.export import export_model
    from mlpot.train import train
    from mlpot.train.checkpoint import load_potential

    folder = out / name
    structures = read_store(store)[:n]
    subset = folder / "data.db"
    folder.mkdir(parents=True, exist_ok=True)
    write_store(subset, structures, force=True)
    cfg = training_config(DemoSettings(force=True, max_train_time=train_time), subset, folder / "training")
    n_val = max(2, round(0.1 * len(structures)))
    cfg.data.n_train, cfg.data.n_val, cfg.data.n_test = len(structures) - n_val, n_val, 0
    started = time.monotonic()
    train(cfg, force=True, quiet=True)
    model = folder / "model.pt"
    export_model(load_potential(folder / "training" / "best.ckpt"), model, "float64")
    return model_errors(out, ref, model, {"n_labels": len(structures), "train_time_s": time.monotonic() - started})


def model_errors(out: Path, ref, model, row: dict) -> dict:
    from mlpot import MLPotCalculator
    from mlpot.data.store import read_store
    from mlpot.demo.analysis import test_errors

    calc = MLPotCalculator(model)
    return {**row, **test_errors(calc, read_store(out / "test.db")), **harmonic_errors(calc, ref)}


def demo_arm(out: Path, ref, args, log) -> dict:
    """The demo: its pool's calculations and its model (given, or trained as the demo does)."""
    from mlpot.demo.settings import DemoSettings
    from mlpot.demo.train_stage import train_and_export

    if args.demo_model:
        model, trained = Path(args.demo_model), "the given mlpot demo run"
    else:
        model = train_and_export(DemoSettings(force=True, max_train_time=args.train_time), ref.store,
                                 out / "demo", log=lambda m: None)["model"]
        trained = "trained here"
    settings = DemoSettings()
    row = model_errors(out, ref, model, {"arm": "demo", "model": str(model), "trained": trained,
                                         "n_labels": settings.n_md + settings.n_normal_mode - settings.n_test,
                                         "calls": ref.calls["total"], "calls_by_step": ref.calls})
    log(json.dumps(row))
    return row


def random_arm(out: Path, ref, args, log) -> list:
    from mlpot.demo.learn_stage import random_samples
    from mlpot.demo.settings import DemoSettings
    from mlpot.sim.labelling import count_calls, default_calculator, write_reference

    rows = []
    for k, n in enumerate(args.random_sizes):
        calc = count_calls(default_calculator("GFN2-xTB"))
        store = out / f"random_{n}.db"
        write_reference(store, random_samples(ref.minimum, ref.modes, calc, DemoSettings(), n, seed=500 + k), calc,
                        force=True, settings={"random": "MD and normal modes, 500 K"})
        row = demo_recipe(out, ref, store, None, args.train_time, f"random_{n}", log)
        row.update(arm="random", calls=shared_calls(ref) + calc.reference_calls)
        log(json.dumps(row))
        rows.append(row)
    return rows


def learned_arm(out: Path, ref, args, log) -> list:
    from mlpot.data.store import store_size

    store = out / "learn" / "data.db"
    total = store_size(store)
    state = json.loads((out / "learn" / "learn.json").read_text())
    rows = []
    for n in sorted({*[s for s in args.learned_sizes if s < total], total}):
        row = demo_recipe(out, ref, store, n, args.train_time, f"learned_{n}", log)
        # the store holds the seed first, then the labels in the order they were made
        row.update(arm="learned", calls=shared_calls(ref) + n + label_failures(state, n, args.n_seed))
        log(json.dumps(row))
        rows.append(row)
    return rows


def label_failures(state: dict, n: int, n_seed: int) -> int:
    """Failed labels (calculations with no structure) made before the store reached n rows."""
    failed, stored = 0, n_seed
    for row in state["history"]:
        if stored >= n:
            break
        stored += row.get("n_labelled", 0)
        failed += row.get("n_label_failed", 0)
    return failed


def summary(rows: dict) -> dict:
    demo = rows["demo"]
    target = demo["forces_mae_meV_per_A"]
    learned = [r for r in rows.get("learn", []) + rows.get("learned", []) if r["forces_mae_meV_per_A"] <= target]
    best = min(learned, key=lambda r: r["calls"]) if learned else None
    return {"demo_forces_mae_meV_per_A": target, "demo_calls": demo["calls"],
            "learn_reaches_demo_at_calls": best and best["calls"],
            "learn_reaches_demo_with": best and {k: best[k] for k in ("arm", "n_labels", "forces_mae_meV_per_A")},
            "fraction_of_demo_calls": best and best["calls"] / demo["calls"]}


def print_curves(rows: dict) -> None:
    print("\narm        labels  GFN2-xTB calls  test forces MAE (meV/Å)  energy (meV)  freq MAE  worst (cm⁻¹)")
    for arm in ("demo", "random", "learn", "learned"):
        for r in ([rows[arm]] if arm == "demo" else rows.get(arm, [])):
            print(f"{arm:9s} {r['n_labels']:7d} {r['calls']:15d} {r['forces_mae_meV_per_A']:24.1f} "
                  f"{r['energy_mae_meV']:13.1f} {r['frequency_mae_cm1']:9.1f} {r['worst_mode_cm1']:9.0f}")


def learn_rows(out: Path, ref, args, log) -> list:
    """The loop's iterations as curve points: committee mean errors, calculations so far."""
    rows = []
    for r in learn_arm(out, ref, args, log):
        calls = shared_calls(ref) + args.n_seed + r.pop("loop_reference_calls")
        rows.append({**r, "n_labels": r["reference_calls"], "calls": calls})
    return rows


def merge_into(results_file: Path | None, new: dict) -> dict:
    """new merged over what results_file holds (separate runs may fill one file), with the
    summary recomputed; written back at once."""
    results = json.loads(results_file.read_text()) if results_file and results_file.is_file() else {}
    results.update(new)
    if "demo" in results:
        results["summary"] = summary(results)
    if results_file:
        results_file.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/learn_vs_demo")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--only", choices=("demo", "random", "learn", "learned"), action="append")
    parser.add_argument("--demo-model", default=None, help="model.pt of an `mlpot demo` run with default settings")
    parser.add_argument("--train-time", type=float, default=400.0, help="s of training per model (the demo's 400)")
    parser.add_argument("--random-sizes", type=int, nargs="+", default=[300, 850])
    parser.add_argument("--learned-sizes", type=int, nargs="+", default=[850])
    add_learn_arguments(parser, max_new=300, md_steps=2000, normal_modes=200)
    args = parser.parse_args(argv)
    out, ref = start(args, log)
    only = set(args.only or ("demo", "random", "learn", "learned"))
    results_file = Path(args.json) if args.json else None
    results = {}
    for arm, run in (("demo", demo_arm), ("random", random_arm), ("learn", learn_rows), ("learned", learned_arm)):
        if arm in only:
            new = {arm: run(out, ref, args, log), f"{arm}_settings": {"date": time.strftime("%Y-%m-%d %H:%M"),
                                                                      **vars(args)}}
            results = merge_into(results_file, new)
    if "demo" in results:
        print_curves(results)
        print(json.dumps(results["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
