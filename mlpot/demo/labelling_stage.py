"""Demo stage 1: GFN2-xTB reference — optimised geometry, harmonic frequencies and IR
intensities (the target of the comparison), and the labelled training set."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlpot.demo.report import calls_line
from mlpot.sim.labelling import (count_calls, default_calculator, optimise, reference_modes, sample_md,
                                 sample_normal_modes, write_reference)
from mlpot.sim.scripting import build_molecule
from mlpot.spectra import ir_intensities


@dataclass
class ReferenceResult:
    minimum: object          # ase.Atoms at the GFN2-xTB minimum (no calculator)
    modes: object            # mlpot.spectra.NormalModes of GFN2-xTB
    intensities: np.ndarray  # [M] km/mol
    store: Path              # labelled configurations
    n_md: int
    n_normal_mode: int
    method: str
    calls: dict = None       # GFN2-xTB calculations per step (optimisation, hessian, md, normal_modes, total)


class CallLedger:
    """Reference calculations of a counted calculator (mlpot.sim.labelling.count_calls), step by step:
    close(name) books the calculations made since the previous close under name."""

    def __init__(self, calculator):
        self.calculator, self.booked = calculator, calculator.reference_calls
        self.steps: dict = {}

    def close(self, name: str) -> int:
        made = self.calculator.reference_calls - self.booked
        self.booked = self.calculator.reference_calls
        self.steps[name] = self.steps.get(name, 0) + made
        self.steps["total"] = sum(v for k, v in self.steps.items() if k != "total")
        return made


def make_reference(settings, out: Path, log=print) -> ReferenceResult:
    calc = count_calls(default_calculator("GFN2-xTB"))
    calls = CallLedger(calc)
    start = build_molecule(settings.molecule)
    minimum, steps = optimise(start, calc, fmax=1e-4)
    calls.close("optimisation")
    log(f"  GFN2-xTB geometry optimised in {steps} BFGS steps")
    modes, dmu = reference_modes(minimum, calc, delta=0.005)
    calls.close("hessian")
    intensities = ir_intensities(dmu, modes)
    log(f"  GFN2-xTB harmonic frequencies (cm⁻¹): {np.array2string(modes.frequencies, precision=0)}")
    n_total = settings.n_md + settings.n_normal_mode
    md = sample_md(minimum, calc, settings.sampling_temperature, settings.n_md,
                   interval=settings.md_interval, seed=settings.seed)
    calls.close("md")
    nm = sample_normal_modes(minimum, calc, settings.sampling_temperature, settings.n_normal_mode,
                             modes=modes, seed=settings.seed + 1)
    calls.close("normal_modes")
    structures = md + nm
    order = np.random.default_rng(settings.seed).permutation(n_total)
    store = out / "reference.db"
    write_reference(store, [structures[i] for i in order], calc, force=settings.force,
                    settings={"molecule": settings.molecule,
                              "temperature_K": settings.sampling_temperature,
                              "n_md": settings.n_md, "md_interval_steps": settings.md_interval,
                              "n_normal_mode": settings.n_normal_mode})
    log(f"  {n_total} labelled configurations ({settings.n_md} MD, {settings.n_normal_mode} "
        f"normal-mode) -> {store}")
    log(f"  {calls_line(calls.steps)}")
    return ReferenceResult(minimum, modes, intensities, store, settings.n_md, settings.n_normal_mode,
                           "GFN2-xTB (tblite)", calls.steps)
