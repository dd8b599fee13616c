"""`mlpot demo` end to end: GFN2-xTB reference -> SchNet (energies, forces, dipoles) ->
model.pt -> optimisation, harmonic and MD spectra -> report.md and PNGs."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from ase.build import minimize_rotation_and_translation

from mlpot.data.splits import load_split
from mlpot.data.store import read_store
from mlpot.demo.analysis import harmonic_analysis, harmonic_comparison, md_spectra, run_nvt
from mlpot.demo.learn_stage import active_learning, make_learn_reference, random_comparison
from mlpot.demo.labelling_stage import make_reference
from mlpot.demo.report import make_figures, write_report
from mlpot.demo.train_stage import train_and_export
from mlpot.deploy.calculator import MLPotCalculator
from mlpot.sim.labelling import default_calculator
from mlpot.sim.scripting import build_molecule
from mlpot.spectra import frequency_mae
from mlpot.train.evaluate import calculator_errors


class DemoError(RuntimeError):
    """The demo cannot run as asked (e.g. the output folder holds earlier results)."""


def check_output_folder(out: Path, force: bool) -> Path:
    """Refuse a non-empty output folder unless force (then its demo files are overwritten)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DemoError(f"{out} exists and is not a folder; choose another --out")
    if out.exists() and any(out.iterdir()) and not force:
        raise DemoError(f"{out} already holds results; pass --out NEW_FOLDER, or --force to "
                        f"overwrite the demo's files in it")
    out.mkdir(parents=True, exist_ok=True)
    return out


class Stopwatch:
    """Wall time of named stages, printed as each one ends."""

    def __init__(self, log=print):
        self.timings: dict[str, float] = {}
        self.log = log

    @contextmanager
    def stage(self, name: str):
        self.log(f"[{len(self.timings) + 1}] {name} ...")
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start
        self.log(f"    {name}: {self.timings[name]:.1f} s")


def aligned_rmsd(a, b) -> float:
    """RMSD (Å) of two conformations of the same molecule after optimal superposition."""
    moved = b.copy()
    minimize_rotation_and_translation(a, moved)
    return float(np.sqrt(np.mean(np.sum((moved.positions - a.positions) ** 2, axis=1))))


def run_demo(settings, log=print) -> dict:
    """Run every stage; returns the results (paths, timings, errors, frequency MAE)."""
    start = build_molecule(settings.molecule)          # fail early on a bad name
    out = check_output_folder(Path(settings.out), settings.force)
    torch.set_num_threads(settings.threads)
    clock = Stopwatch(log)
    log(f"mlpot demo: {settings.molecule} ({start.get_chemical_formula()}), output in {out.resolve()}")

    learning = None
    if settings.learn:
        ref, train, calc, test, learning = _learn_stages(settings, out, clock, log)
    else:
        with clock.stage("GFN2-xTB reference (optimisation, Hessian, sampling)"):
            ref = make_reference(settings, out, log)
        with clock.stage("training SchNet and export"):
            train = train_and_export(settings, ref.store, out, log)
        calc = MLPotCalculator(train["model"])
        test = read_store(ref.store, load_split(train["run_folder"] / "split.npz")["test"])
    torch.set_num_threads(1)     # one small molecule: threads only add overhead from here on
    with clock.stage("test-set errors of the model"):
        errors = calculator_errors(calc, test)
        log("  " + ", ".join(f"{k} {v:.4g}" for k, v in errors.items()))
    with clock.stage("optimisation and harmonic analysis with the model"):
        model = harmonic_analysis(start, calc, settings.fmax, settings.opt_steps, align_to=ref.minimum)
        if model.optimisation_steps < 0:
            log(f"  warning: the model's optimisation did not reach fmax={settings.fmax} eV/Å in "
                f"{-model.optimisation_steps} steps; frequencies are at the last geometry")
        mae = frequency_mae(ref.modes, model.modes, by="overlap")
        mae_order = frequency_mae(ref.modes, model.modes, by="order")
        rmsd = aligned_rmsd(ref.minimum, model.minimum)
        log(f"  frequency MAE vs GFN2-xTB: {mae:.1f} cm⁻¹ (modes paired by eigenvector overlap; "
            f"{mae_order:.1f} cm⁻¹ paired by order); geometry RMSD {rmsd:.3f} Å")
    md_info, spectra = {}, {}
    if learning is not None:
        with clock.stage("harmonic analysis of every committee and of the random-sampling model"):
            _compare_learning(learning, ref, start, settings, log)
    runs = (("SchNet committee (mlpot)" if settings.learn else "SchNet (mlpot)", calc, model.minimum),
            ("GFN2-xTB", default_calculator("GFN2-xTB"), ref.minimum))
    with clock.stage(f"NVT MD, {settings.md_time:g} fs at {settings.md_temperature:g} K (model and GFN2-xTB)"):
        for label, md_calc, geometry in runs:
            traj = run_nvt(geometry, md_calc, settings.md_temperature, settings.md_time,
                           settings.md_timestep, seed=settings.seed)
            spectra[label] = md_spectra(traj, geometry.get_masses())
            md_info[label] = (traj.error or f"{len(traj.velocities) - 1} steps, mean temperature "
                              f"{traj.temperature[1:].mean():.0f} K, potential energy range "
                              f"{np.ptp(traj.potential_energy):.3f} eV")
            log(f"  {label}: {md_info[label]}")
    with clock.stage("figures and report"):
        figures = make_figures(out, ref, model, spectra)
        results = {"reference": ref, "model": model, "training": train, "test_errors": errors, "learning": learning,
                   "frequency_mae": mae, "frequency_mae_by_order": mae_order, "rmsd": rmsd, "md": md_info, "figures": figures,
                   "timings": clock.timings}
        report = write_report(out / "report.md", settings, results)
    total = sum(clock.timings.values())
    log(f"done in {total:.0f} s: frequency MAE {mae:.1f} cm⁻¹ vs GFN2-xTB. Report: {report.resolve()}")
    log(f"figures: {', '.join(str(p) for p in figures.values())}; model: {train['model']}")
    results["report"] = report
    return results


def _learn_stages(settings, out: Path, clock: Stopwatch, log):
    """--learn: reference, active learning and the random-sampling comparison; returns
    (reference, training summary, committee calculator, test structures, learning results)."""
    with clock.stage("GFN2-xTB reference (optimisation, Hessian, seed and test sets)"):
        ref = make_learn_reference(settings, out, log)
    with clock.stage("active learning (committee MD, GFN2-xTB labels, retraining)"):
        state = active_learning(settings, ref, out, log)
    rows = [r for r in state["history"] if "models" in r]
    n_labels = rows[-1]["n_reference"]
    with clock.stage(f"random sampling: one SchNet on {n_labels} random GFN2-xTB configurations"):
        random_model, random_calls = random_comparison(settings, ref, n_labels, out, log)
    # GFN2-xTB calculations each way needs: both share the optimisation and the Hessian (the normal
    # modes); active learning adds its seed and its labels, random sampling its samples (MD steps
    # between snapshots included). The test set is the same for both and counted in neither.
    shared = ref.calls["optimisation"] + ref.calls["hessian"]
    for row in rows:
        row["calls"] = shared + ref.calls["seed"] + (row.get("reference_calls") or 0)
    models = rows[-1]["models"]
    train = {"model": ", ".join(models), "models": models, "stop_reason": state["stop_reason"]}
    learning = {"rows": rows, "random_model": random_model, "n_labels": n_labels,
                "random_calls": shared + random_calls}
    return ref, train, MLPotCalculator(models), read_store(ref.test_store), learning


def _compare_learning(learning: dict, ref, start, settings, log) -> None:
    """Frequency errors of each iteration's committee and of the random-sampling model (in place)."""
    for row in learning["rows"]:
        harmonic = harmonic_analysis(start, MLPotCalculator(row["models"]), settings.fmax, settings.opt_steps,
                                     align_to=ref.minimum)
        row.update(harmonic_comparison(ref.modes, ref.intensities, harmonic))
        log(f"  iteration {row['iteration']}: {row['n_reference']} labels ({row['calls']} GFN2-xTB calculations), test forces MAE "
            f"{row['test_forces_mae_meV_per_A']:.1f} meV/Å, frequency MAE {row['frequency_mae_cm1']:.1f} cm⁻¹, "
            f"worst mode {row['worst_mode_cm1']:.0f} cm⁻¹")
    calc = MLPotCalculator(learning["random_model"])
    harmonic = harmonic_analysis(start, calc, settings.fmax, settings.opt_steps, align_to=ref.minimum)
    learning["random"] = {"n_reference": learning["n_labels"], "calls": learning["random_calls"],
                          **calculator_errors(calc, read_store(ref.test_store)),
                          **harmonic_comparison(ref.modes, ref.intensities, harmonic)}
    r = learning["random"]
    log(f"  random sampling, {r['n_reference']} labels ({r['calls']} GFN2-xTB calculations): test forces MAE {r['forces_mae_meV_per_A']:.1f} meV/Å, "
        f"frequency MAE {r['frequency_mae_cm1']:.1f} cm⁻¹, worst mode {r['worst_mode_cm1']:.0f} cm⁻¹")
