"""Exploration for active learning: committee MD, normal-mode sampling with the committee's
own Hessian, and the choice of frames to label.

A frame is explored every `sample_every` MD steps (or is one normal-mode sample); its deviation
is the committee's uncertainty (largest per-atom force standard deviation, eV/Å,
mlpot.deploy.committee). Frames with a deviation in [trust_lo, trust_hi] are candidates for labelling
(DP-GEN's rule: below, the model is trusted; above, the frame is likely unphysical, from a model
that is already far off).
"""
from __future__ import annotations

import numpy as np

from mlpot.sim.labelling import normal_mode_displacements, optimise, reference_modes
from mlpot.sim.md import langevin


def committee_md(atoms, calculator, temperature: float, n_steps: int, sample_every: int, timestep: float,
                 friction: float, abort: float, seed: int) -> tuple[list, bool]:
    """Langevin MD of `atoms` (copied) with a committee calculator; returns (frames, aborted).

    frames: unlabelled copies of the structure every `sample_every` steps, with
    info["deviation"] (eV/Å), info["temperature"] (K) and info["step"]. The run stops at the
    first frame whose deviation exceeds `abort` or is not finite (aborted = True). A structure the
    committee cannot evaluate at the start (an element it was not trained on, a degenerate cell)
    raises ValueError: an input error; once the MD runs, one it cannot evaluate (NaN positions)
    is a frame with deviation inf: the model blew the structure apart."""
    rng = np.random.default_rng(seed)
    calculator.get_property("uncertainty", atoms.copy())      # input errors raise here, before the MD
    work, dyn = langevin(atoms, calculator, temperature, timestep, friction, rng)
    frames = []
    for step in range(sample_every, n_steps + 1, sample_every):
        try:
            dyn.run(sample_every)
        except ValueError:        # the start was evaluated: the model blew the structure apart
            deviation = float("inf")
        else:
            deviation = committee_deviation(work, calculator)
        frame = work.copy()
        frame.calc = None
        frame.set_constraint()
        frame.info.update(deviation=deviation, temperature=float(temperature), step=step)
        frames.append(frame)
        if not deviation <= abort:
            return frames, True
    return frames, False


def committee_normal_modes(atoms, calculator, temperatures, n_samples: int, seed: int, fmax: float = 0.01,
                           max_steps: int = 500, min_frequency: float = 100.0,
                           max_deviation: float = float("inf")) -> tuple[list, dict]:
    """Normal-mode samples around the committee's own minimum, explored without a reference call.

    `atoms` is optimised with the committee (BFGS to fmax eV/Å, at most max_steps). Where that
    does not converge, or the committee's deviation at its minimum exceeds max_deviation (eV/Å:
    a minimum of a model that is still far off), the samples are drawn around `atoms` itself.
    The normal modes come from the committee-mean finite-difference Hessian there, and n_samples
    structures per temperature (K) are displaced with classical Boltzmann amplitudes
    (mlpot.sim.labelling.normal_mode_displacements; modes below min_frequency cm⁻¹, imaginary ones
    included, sampled as if at min_frequency). Returns (frames, info): frames with
    info["deviation"], ["temperature"], ["step"] (the sample's index) and ["source"] =
    "normal_modes"; info: {"optimisation_steps" (negative: not converged), "centre"
    ("committee minimum" or "start"), "lowest_frequency_cm1"}.
    """
    centre, steps = optimise(atoms, calculator, fmax=fmax, steps=max_steps, require=False)
    at_minimum = steps >= 0 and committee_deviation(centre, calculator) <= max_deviation
    if not at_minimum:
        centre = atoms.copy()
        centre.calc = None
    modes, _ = reference_modes(centre, calculator)
    frames = []
    for j, temperature in enumerate(temperatures):
        for i, frame in enumerate(normal_mode_displacements(centre, modes, temperature, n_samples,
                                                            min_frequency, seed + j)):
            frame.info = {"deviation": committee_deviation(frame, calculator), "temperature": float(temperature),
                          "step": i, "source": "normal_modes"}
            frames.append(frame)
    return frames, {"optimisation_steps": int(steps), "centre": "committee minimum" if at_minimum else "start",
                    "lowest_frequency_cm1": float(np.min(modes.frequencies))}


def committee_deviation(atoms, calculator) -> float:
    """The committee's uncertainty (eV/Å) for atoms (their own calculator is left as it is);
    inf where it is not finite or the structure cannot be evaluated (NaN positions)."""
    try:
        deviation = float(calculator.get_property("uncertainty", atoms))
    except ValueError:
        return float("inf")
    return deviation if np.isfinite(deviation) else float("inf")


def deviation_statistics(frames, trust_lo: float, trust_hi: float) -> dict:
    """Counts and spread of the explored frames' deviations (fraction_above_lo nan without frames:
    nothing explored is not converged)."""
    d = np.array([f.info["deviation"] for f in frames], dtype=float)
    finite = d[np.isfinite(d)]
    n = len(d)
    return {"n_explored": n,
            "n_accurate": int((d < trust_lo).sum()),
            "n_candidates": int(((d >= trust_lo) & (d <= trust_hi)).sum()),
            "n_failed": int((~(d <= trust_hi)).sum()),
            "fraction_above_lo": float((~(d < trust_lo)).sum() / n) if n else float("nan"),
            "deviation_mean": float(finite.mean()) if finite.size else None,
            "deviation_max": float(finite.max()) if finite.size else None}


def select_candidates(frames, trust_lo: float, trust_hi: float, max_new: int, seed: int) -> list:
    """Up to max_new candidate frames (deviation in [trust_lo, trust_hi]), drawn at random
    without replacement (seeded), in their order of exploration."""
    candidates = [i for i, f in enumerate(frames) if trust_lo <= f.info["deviation"] <= trust_hi]
    if len(candidates) > max_new:
        rng = np.random.default_rng(seed)
        candidates = sorted(rng.choice(candidates, size=max_new, replace=False).tolist())
    return [frames[i] for i in candidates]
