"""The training loss (SchNet paper form) and error sums for metrics.

    loss = w_E · mean_b (ΔE_b)² + w_F · mean over components (ΔF)²
         [+ w_S · mean (Δσ)² + w_μ · mean (Δμ)²]

with E per structure in eV, F in eV/Å, σ in eV/Å³, μ in e·Å; or, for the weight key
PER_ATOM_ENERGY, w_E · mean_b (ΔE_b / N_b)² (the per-atom energy loss of MACE and NequIP, which
does not let large cells dominate). A term enters only when its weight is positive and both
the label and the model output are in the batch.

For data-parallel training every rank sees a shard of the global batch; the means are
taken over the counts of the *global* batch (`denominators`), so that the sum over ranks
of the shard losses (and of their gradients) is exactly the single-process loss.
"""
from __future__ import annotations

from typing import Dict

import torch

from mlpot import keys as K

PER_ATOM_ENERGY = "energy_per_atom"   # weight key of the term (ΔE / N_atoms)²
TERMS = (K.ENERGY, PER_ATOM_ENERGY, K.FORCES, K.STRESS, K.DIPOLE)
LABEL = {PER_ATOM_ENERGY: K.ENERGY}      # the label (and output) a term compares, if not its own key


def loss_terms(batch: Dict[str, torch.Tensor], weights: Dict[str, float]) -> list[str]:
    """Labels of `batch` that enter the loss (positive weight and present)."""
    return [key for key in TERMS if weights.get(key, 0.0) > 0 and LABEL.get(key, key) in batch]


def term_counts(n_structures: float, n_atoms: float) -> Dict[str, float]:
    """Number of values each term's mean is taken over, for n_structures holding n_atoms:
    structures (energies), force, stress and dipole components."""
    return {K.ENERGY: n_structures, PER_ATOM_ENERGY: n_structures, K.FORCES: 3 * n_atoms,
            K.STRESS: 9 * n_structures, K.DIPOLE: 3 * n_structures}


def denominators(batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """term_counts of `batch`."""
    return term_counts(int(batch[K.N_ATOMS].shape[0]), int(batch[K.ATOMIC_NUMBERS].shape[0]))


def weighted_loss(pred: Dict[str, torch.Tensor], batch: Dict[str, torch.Tensor],
                  weights: Dict[str, float], counts: Dict[str, float] | None = None) -> torch.Tensor:
    """Σ_terms w · Σ (pred - label)² / count; counts default to this batch's own
    (`denominators(batch)`); pass the global batch's counts for a shard."""
    counts = counts or denominators(batch)
    loss = torch.zeros((), dtype=batch[K.POSITIONS].dtype, device=batch[K.POSITIONS].device)
    for key in loss_terms(batch, weights):
        label = LABEL.get(key, key)
        if label not in pred:
            continue
        diff = pred[label] - batch[label].to(pred[label].dtype)
        if key == PER_ATOM_ENERGY:
            diff = diff / batch[K.N_ATOMS].to(diff.dtype)
        loss = loss + weights[key] * diff.square().sum() / counts[key]
    return loss


@torch.no_grad()
def error_sums(pred: Dict[str, torch.Tensor], batch: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """Sums for MAE/RMSE over a dataset: absolute and squared errors of the energy (eV, per
    structure and per atom), forces (eV/Å per component), stress and dipole components where
    present, and the counts. Add them up over batches (add_sums), then divide."""
    out = {"n_structures": float(batch[K.N_ATOMS].shape[0]), "n_force_components": 0.0}
    if K.ENERGY in batch and K.ENERGY in pred:
        de = pred[K.ENERGY].detach() - batch[K.ENERGY].to(pred[K.ENERGY].dtype)
        per_atom = de / batch[K.N_ATOMS].to(de.dtype)
        out.update(energy_abs=float(de.abs().sum()), energy_sq=float(de.square().sum()),
                   energy_per_atom_abs=float(per_atom.abs().sum()),
                   energy_per_atom_sq=float(per_atom.square().sum()))
    if K.FORCES in batch and K.FORCES in pred:
        df = pred[K.FORCES].detach() - batch[K.FORCES].to(pred[K.FORCES].dtype)
        out.update(forces_abs=float(df.abs().sum()), forces_sq=float(df.square().sum()),
                   n_force_components=float(df.numel()))
    for key, name in ((K.STRESS, "stress"), (K.DIPOLE, "dipole")):
        if key in batch and key in pred:
            d = pred[key].detach() - batch[key].to(pred[key].dtype)
            out.update({f"{name}_abs": float(d.abs().sum()), f"{name}_sq": float(d.square().sum()),
                        f"n_{name}_components": float(d.numel())})
    return out


def add_sums(total: Dict[str, float], part: Dict[str, float]) -> Dict[str, float]:
    """total += part, key by key (missing keys start at 0)."""
    for key, value in part.items():
        total[key] = total.get(key, 0.0) + value
    return total
