"""`mlpot demo --learn`: the reference data reached by active learning (mlpot learn) instead of
random sampling, and a random-sampling model with as many reference labels for comparison.

Reference: the GFN2-xTB minimum and normal modes, a seed of normal-mode samples at 300 K, and an
independent test set (2/3 Langevin MD, 1/3 normal-mode samples at the sampling temperature).
Active learning: a committee of SchNet models (the demo's architecture), committee MD at
several temperatures, uncertain frames labelled with GFN2-xTB. Comparison: one SchNet trained
for as long as one committee member was in total, on as many random samples (MD and normal modes
at the sampling temperature, as the default demo draws them) as active learning labelled.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlpot.demo.labelling_stage import CallLedger
from mlpot.deploy.export import export_model
from mlpot.learn import ActiveLearning
from mlpot.learn.config import learn_config_from_dict
from mlpot.sim.labelling import (count_calls, default_calculator, optimise, reference_modes, sample_md,
                                 sample_normal_modes, write_reference)
from mlpot.sim.scripting import build_molecule
from mlpot.spectra import ir_intensities
from mlpot.train import train
from mlpot.train.checkpoint import load_potential
from mlpot.train.config import config_from_dict


@dataclass
class LearnReference:
    minimum: object
    modes: object
    intensities: np.ndarray
    seed_store: Path
    test_store: Path
    method: str = "GFN2-xTB (tblite)"
    calls: dict = None       # GFN2-xTB calculations: optimisation, hessian, seed, test, total


def make_learn_reference(settings, out: Path, log=print) -> LearnReference:
    calc = count_calls(default_calculator("GFN2-xTB"))
    calls = CallLedger(calc)
    minimum, steps = optimise(build_molecule(settings.molecule), calc, fmax=1e-4)
    calls.close("optimisation")
    modes, dmu = reference_modes(minimum, calc, delta=0.005)
    calls.close("hessian")
    log(f"  GFN2-xTB geometry optimised in {steps} BFGS steps; harmonic frequencies (cm⁻¹): "
        f"{np.array2string(modes.frequencies, precision=0)}")
    seed = sample_normal_modes(minimum, calc, 300.0, settings.learn_seed, modes=modes, seed=settings.seed + 2,
                               progress=False)
    calls.close("seed")
    seed_store = out / "seed.db"
    write_reference(seed_store, seed, calc, force=settings.force, settings={"seed": "normal modes, 300 K"})
    test = random_samples(minimum, modes, calc, settings, settings.n_test, seed=settings.seed + 3)
    calls.close("test")
    test_store = out / "test.db"
    write_reference(test_store, test, calc, force=settings.force,
                    settings={"test": f"MD and normal modes, {settings.sampling_temperature:g} K"})
    log(f"  seed: {len(seed)} normal-mode samples at 300 K; test set: {len(test)} configurations")
    return LearnReference(minimum, modes, ir_intensities(dmu, modes), seed_store, test_store, calls=calls.steps)


def random_samples(minimum, modes, calc, settings, n: int, seed: int) -> list:
    """n labelled configurations as the default demo draws them: 2/3 from Langevin MD and 1/3
    normal-mode samples at the sampling temperature."""
    n_md = (2 * n) // 3
    md = sample_md(minimum, calc, settings.sampling_temperature, n_md, interval=settings.md_interval, seed=seed,
                   progress=False)
    nm = sample_normal_modes(minimum, calc, settings.sampling_temperature, n - n_md, modes=modes, seed=seed + 1,
                             progress=False)
    return md + nm


def model_section(settings) -> dict:
    return {"representation": "schnet", "cutoff": settings.cutoff, "n_atom_basis": settings.n_atom_basis,
            "n_filters": settings.n_filters, "n_interactions": settings.n_interactions, "n_rbf": settings.n_rbf,
            "dipole": True}


def training_section(settings, max_time: float) -> dict:
    return {"max_time": max_time, "batch_size": settings.batch_size, "patience": None,
            "dipole_weight": settings.dipole_weight, "seed": settings.seed, "num_threads": settings.threads}


def active_learning(settings, ref: LearnReference, out: Path, log=print) -> dict:
    """Run mlpot learn into out/learn; returns its state (history rows, stop reason)."""
    raw = {"learn": {"seed_data": str(ref.seed_store), "test": str(ref.test_store),
                     "temperatures": list(settings.learn_temperatures), "md_steps": settings.learn_md_steps,
                     "normal_modes": settings.learn_normal_modes,
                     "sample_every": 10, "trust_lo": settings.learn_trust_lo, "trust_hi": settings.learn_trust_hi,
                     "max_new": settings.learn_max_new, "max_iterations": settings.learn_iterations,
                     "converged_fraction": 0.0, "seed": settings.seed, "threads": 1},
           "model": model_section(settings),
           "training": {**training_section(settings, settings.learn_member_time), "ensemble": settings.learn_committee},
           "output": str(out / "learn")}
    cfg = learn_config_from_dict(raw)
    loop = ActiveLearning(cfg, calculator=default_calculator("GFN2-xTB"), force=True,
                          log=lambda message: log("  " + message))
    return loop.run()


def random_comparison(settings, ref: LearnReference, n: int, out: Path, log=print) -> tuple[Path, int]:
    """One SchNet on n random samples, trained as long as one committee member in total;
    exported to out/random/model.pt (float64). Returns the model and the GFN2-xTB calculations
    the samples took (the MD steps between snapshots included)."""
    calc = count_calls(default_calculator("GFN2-xTB"))
    folder = out / "random"
    store = folder / "random.db"
    folder.mkdir(parents=True, exist_ok=True)
    write_reference(store, random_samples(ref.minimum, ref.modes, calc, settings, n, seed=settings.seed + 5), calc,
                    force=True, settings={"random": f"MD and normal modes, {settings.sampling_temperature:g} K"})
    budget = settings.learn_member_time * settings.learn_iterations
    cfg = config_from_dict({"data": {"train": str(store), "n_train": 0.9, "n_val": 0.1, "n_test": 0},
                            "model": model_section(settings), "training": training_section(settings, budget),
                            "output": str(folder / "training")})
    train(cfg, force=True, quiet=True)
    model = folder / "model.pt"
    export_model(load_potential(folder / "training" / "best.ckpt"), model, "float64",
                 training_data=f"mlpot demo --learn: {n} random GFN2-xTB samples")
    log(f"  random sampling: {n} GFN2-xTB configurations ({calc.reference_calls} calculations), one SchNet "
        f"trained {budget:.0f} s -> {model}")
    return model, calc.reference_calls
