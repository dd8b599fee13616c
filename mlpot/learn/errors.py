"""Test errors of a committee, and how well its uncertainty ranks the true errors."""
from __future__ import annotations

import numpy as np

from mlpot.deploy.calculator import MLPotCalculator
from mlpot.train.evaluate import calculator_errors


def rank_correlation(a, b) -> float:
    """Spearman's rank correlation of two equally long sequences (nan for fewer than 3)."""
    from scipy.stats import spearmanr  # lazy: slow (~1.2 s, ~560 modules); only this statistic needs it

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def committee_errors(models, structures) -> dict:
    """Errors of a committee (model files) on labelled structures: the committee mean's energy MAE
    (meV) and force MAE (meV/Å, per component), member 0's force MAE, the mean uncertainty (eV/Å)
    and the rank correlation between each structure's uncertainty and its largest per-atom force
    error (norm, of the mean)."""
    committee = MLPotCalculator([str(m) for m in models])
    mean = calculator_errors(committee, structures)
    member = calculator_errors(MLPotCalculator(str(models[0])), structures)
    uncertainty, worst = [], []
    for atoms in structures:
        work = atoms.copy()
        work.calc = committee
        error = np.linalg.norm(work.get_forces() - atoms.calc.results["forces"], axis=1)
        uncertainty.append(committee.results["uncertainty"])
        worst.append(float(error.max()))
    return {"test_energy_mae_meV": mean["energy_mae_meV"],
            "test_forces_mae_meV_per_A": mean["forces_mae_meV_per_A"],
            "test_member_forces_mae_meV_per_A": member["forces_mae_meV_per_A"],
            "test_uncertainty_mean": float(np.mean(uncertainty)),
            "test_rank_correlation": rank_correlation(uncertainty, worst),
            "n_test": len(structures)}
