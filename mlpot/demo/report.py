"""Demo stage 4: figures and report.md."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mlpot.spectra import match_modes
from mlpot.spectra.plots import plot_frequency_parity, plot_spectra, plot_stick_spectra


def make_figures(out: Path, ref, model, spectra: dict) -> dict:
    """PNGs comparing model and GFN2-xTB; returns {name: path}."""
    top = 1.1 * max(ref.modes.frequencies.max(), model.modes.frequencies.max(), 1000.0)
    xlim = (0.0, float(np.ceil(top / 100) * 100))
    figures = {
        "ir_harmonic": plot_stick_spectra(
            out / "ir_harmonic.png",
            {"GFN2-xTB": (ref.modes.frequencies, ref.intensities),
             "SchNet (mlpot)": (model.modes.frequencies, model.intensities)},
            xlim=xlim, title="Harmonic IR spectra at each method's own minimum"),
        "frequencies": plot_frequency_parity(   # the same pairing as the report's table
            out / "frequencies.png", ref.modes.frequencies,
            model.modes.frequencies[match_modes(ref.modes, model.modes, "overlap")], ("GFN2-xTB", "SchNet")),
    }
    power = {label: s["power"] for label, s in spectra.items() if "power" in s}
    if power:
        figures["power_spectrum"] = plot_spectra(
            out / "power_spectrum.png", power, xlim=xlim, title="Power spectrum (VACF) from NVT MD",
            sticks={"SchNet harmonic": model.modes.frequencies})
    ir = {label: s["ir"] for label, s in spectra.items() if "ir" in s}
    if ir:
        figures["ir_md"] = plot_spectra(out / "ir_md.png", ir, xlim=xlim,
                                        title="IR spectrum from the dipole autocorrelation (NVT MD)")
    return figures


def mode_table(ref, model) -> list[str]:
    pairs = match_modes(ref.modes, model.modes, "overlap")
    a = ref.modes.mass_weighted.reshape(len(pairs), -1)
    b = model.modes.mass_weighted.reshape(len(pairs), -1)
    lines = ["| mode | GFN2-xTB (cm⁻¹) | SchNet (cm⁻¹) | Δ (cm⁻¹) | overlap | GFN2-xTB IR (km/mol) "
             "| SchNet IR (km/mol) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for k, j in enumerate(pairs):
        f_ref, f_model = ref.modes.frequencies[k], model.modes.frequencies[j]
        lines.append(f"| {k + 1} | {f_ref:.0f} | {f_model:.0f} | {f_model - f_ref:+.0f} | "
                     f"{float(a[k] @ b[j]) ** 2:.2f} | {ref.intensities[k]:.1f} | {model.intensities[j]:.1f} |")
    return lines


def write_report(path: Path, settings, results: dict) -> Path:
    """report.md: what was done, how long each stage took, how accurate the model is."""
    ref, model = results["reference"], results["model"]
    timings, errors, figures = results["timings"], results["test_errors"], results["figures"]
    lines = [
        f"# mlpot demo: {settings.molecule}", "",
        f"Reference: {ref.method}; model: SchNet{' committee' if settings.learn else ''} ({settings.n_atom_basis} features, "
        f"{settings.n_interactions} interactions, cutoff {settings.cutoff} Å) trained on energies, "
        f"forces and dipoles; exported to "
        + ("the files in `learn/committee.json`" if settings.learn else "`model.pt`") + " (float64).", "",
        "## Timings", "", "| stage | seconds |", "|---|---:|",
        *[f"| {name} | {seconds:.1f} |" for name, seconds in timings.items()],
        f"| **total** | **{sum(timings.values()):.1f}** |", "",
        "## Data and training", "",
        *(learning_lines(settings, results) if results.get("learning") else sampling_lines(settings, results)),
        f"- held-out test set ({errors['n']} configurations, exported model through MLPotCalculator): "
        f"energy MAE {errors['energy_mae_meV']:.1f} meV, forces MAE "
        f"{errors['forces_mae_meV_per_A']:.1f} meV/Å"
        + (f", dipole MAE {errors['dipole_mae_eA']:.4f} e·Å "
           f"({errors['dipole_mae_eA'] / 0.20819434:.3f} D)." if "dipole_mae_eA" in errors else "."), "",
        "## Harmonic frequencies and IR intensities", "",
        f"Each method at its own minimum (BFGS; GFN2-xTB to 1e-4 eV/Å, the model to {settings.fmax:g} eV/Å "
        + (f"in {model.optimisation_steps} steps" if model.optimisation_steps >= 0 else
           f"— **not reached in {-model.optimisation_steps} steps**, analysed where it stopped")
        + f", starting from the ase.build geometry). Model Hessian by "
        f"automatic differentiation; IR intensities from finite-difference dipole derivatives (km/mol, "
        f"as ASE's Infrared). Each GFN2-xTB mode is paired with the model mode of largest "
        f"eigenvector overlap (the same vibration); pairing simply in order of frequency gives "
        f"{results['frequency_mae_by_order']:.1f} cm⁻¹.", "",
        f"**Frequency MAE: {results['frequency_mae']:.1f} cm⁻¹** over {len(ref.modes.frequencies)} modes; "
        f"geometry RMSD to the GFN2-xTB minimum {results['rmsd']:.3f} Å.", "",
        *mode_table(ref, model), "",
    ]
    if "analytic_vs_fd_hessian_max_abs" in model.extra:
        lines += [f"Analytic vs finite-difference Hessian of the model: max |Δ| = "
                  f"{model.extra['analytic_vs_fd_hessian_max_abs']:.2e} eV/Å².", ""]
    lines += ["## Molecular dynamics", "",
              f"{settings.md_time:g} fs of Langevin NVT MD at {settings.md_temperature:g} K (time step "
              f"{settings.md_timestep:g} fs, friction 0.002/fs, velocities drawn at 2T from the minimum) "
              f"with the model and with GFN2-xTB; spectra from the velocity and dipole autocorrelation "
              f"(Hann window, correlation up to half the run, 4x zero padding).", ""]
    for label, info in results["md"].items():
        lines.append(f"- {label}: {info}")
    lines += ["", "## Figures", ""]
    lines += [f"- `{p.name}`" for p in figures.values()]
    lines += ["", "## Settings", "", "```", *[f"{k}: {v}" for k, v in settings.to_dict().items()], "```", ""]
    path.write_text("\n".join(lines))
    return path


def sampling_lines(settings, results: dict) -> list[str]:
    ref, train = results["reference"], results["training"]
    last = train.get("last") or {}
    return [
        f"- {ref.n_md + ref.n_normal_mode} GFN2-xTB configurations: {ref.n_md} from Langevin MD at "
        f"{settings.sampling_temperature:g} K (one every {settings.md_interval} steps of 0.5 fs) and "
        f"{ref.n_normal_mode} from normal-mode sampling at {settings.sampling_temperature:g} K; "
        f"stored in `reference.db`.",
        *([f"- {calls_line(ref.calls)}"] if getattr(ref, "calls", None) else []),
        f"- training stopped after {train['epochs']} epochs ({train['stop_reason']}); best epoch "
        f"{train['best_epoch']}; last validation MAE: energy {_fmt(last.get('val_energy_mae_meV'))} meV, "
        f"forces {_fmt(last.get('val_forces_mae_meV_per_A'))} meV/Å. Run folder: `training/` "
        f"(metrics.csv, learning_curve.png, checkpoints)."]


def learning_lines(settings, results: dict) -> list[str]:
    """--learn: how the data was reached, and active learning against random sampling."""
    learning = results["learning"]
    rows, random = learning["rows"], learning["random"]
    lines = [
        f"- active learning (`learn/`, `mlpot learn`): {settings.learn_seed} normal-mode samples at 300 K to "
        f"start; committees of {settings.learn_committee} SchNet models ({settings.learn_member_time:g} s of "
        f"training per member and iteration, warm-started), committee MD at "
        f"{', '.join(f'{t:g}' for t in settings.learn_temperatures)} K, up to {settings.learn_max_new} frames "
        f"per iteration with a max force deviation in [{settings.learn_trust_lo:g}, {settings.learn_trust_hi:g}] "
        f"eV/Å labelled by GFN2-xTB; {learning['n_labels']} GFN2-xTB labels in the end "
        f"({results['training']['stop_reason']}). The model is the last committee's mean.",
        f"- random sampling for comparison (`random/`): one SchNet trained "
        f"{settings.learn_member_time * settings.learn_iterations:g} s (one member's total) on "
        f"{random['n_reference']} configurations drawn as the default demo draws them (2/3 Langevin MD, "
        f"1/3 normal modes at {settings.sampling_temperature:g} K).", "",
        f"- GFN2-xTB calculations counts every call of the reference: the shared optimisation and "
        f"Hessian ({results['reference'].calls['optimisation'] + results['reference'].calls['hessian']}), "
        f"then the seed and the labels of active learning, or the random samples with the MD steps "
        f"between them; the test set ({results['reference'].calls['test']}) is counted in neither.", "",
        "| | GFN2-xTB labels | GFN2-xTB calculations | test forces MAE (meV/Å) | test energy MAE (meV) "
        "| frequency MAE (cm⁻¹) | worst mode (cm⁻¹) | strong IR bands, max rel. error |",
        "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| active learning, iteration {r['iteration']} | {r['n_reference']} | {r['calls']} | "
                     f"{r['test_forces_mae_meV_per_A']:.1f} | {r['test_energy_mae_meV']:.1f} | "
                     f"{r['frequency_mae_cm1']:.1f} | {r['worst_mode_cm1']:.0f} | "
                     f"{100 * r['strong_ir_intensity_max_rel_error']:.0f} % |")
    lines += [f"| random sampling | {random['n_reference']} | {random['calls']} | {random['forces_mae_meV_per_A']:.1f} | "
              f"{random['energy_mae_meV']:.1f} | {random['frequency_mae_cm1']:.1f} | "
              f"{random['worst_mode_cm1']:.0f} | {100 * random['strong_ir_intensity_max_rel_error']:.0f} % |", "",
              f"Uncertainty against true error on the test set (Spearman rank correlation of the committee's "
              f"largest per-atom force deviation with the largest per-atom force error): "
              f"{rows[-1]['test_rank_correlation']:.2f}.", ""]
    return lines


def calls_line(calls: dict) -> str:
    """GFN2-xTB calculations of the reference stage, step by step (CallLedger.steps)."""
    parts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in calls.items() if k != "total")
    return f"GFN2-xTB calculations: {calls['total']} ({parts}; the MD counts every step, not only the snapshots)"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.1f}"
