"""Per-epoch metrics of a run: metrics.csv and learning_curve.png, rewritten from the
history kept in the checkpoint (so they always agree with last.ckpt after a resume)."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from mlpot.train.checkpoint import atomic_write_bytes

COLUMNS = ("epoch", "train_loss", "val_loss", "val_energy_mae_meV", "val_forces_mae_meV_per_A",
           "val_energy_mae_meV_per_atom",
           "train_energy_mae_meV", "train_forces_mae_meV_per_A", "lr", "epoch_time_s", "wall_time_s", "stage")


def summarize(sums: dict, weights: dict) -> dict:
    """Loss and MAE/RMSE from summed errors (mlpot.train.losses.error_sums):
    loss = Σ_k w_k · Σ sq_k / count_k over the terms present; MAEs in meV and meV/Å."""
    out = {}
    n = sums.get("n_structures", 0.0)
    nf = sums.get("n_force_components", 0.0)
    loss = 0.0
    for key, sq, count in (("energy", "energy_sq", n), ("energy_per_atom", "energy_per_atom_sq", n),
                           ("forces", "forces_sq", nf),
                           ("stress", "stress_sq", sums.get("n_stress_components", 0.0)),
                           ("dipole", "dipole_sq", sums.get("n_dipole_components", 0.0))):
        if sq in sums and count > 0 and weights.get(key, 0.0) > 0:
            loss += weights[key] * sums[sq] / count
    out["loss"] = loss
    if "energy_abs" in sums and n > 0:
        out["energy_mae_meV"] = 1000 * sums["energy_abs"] / n
        out["energy_rmse_meV"] = 1000 * math.sqrt(sums["energy_sq"] / n)
        out["energy_mae_meV_per_atom"] = 1000 * sums["energy_per_atom_abs"] / n
        out["energy_rmse_meV_per_atom"] = 1000 * math.sqrt(sums["energy_per_atom_sq"] / n)
    if "forces_abs" in sums and nf > 0:
        out["forces_mae_meV_per_A"] = 1000 * sums["forces_abs"] / nf
        out["forces_rmse_meV_per_A"] = 1000 * math.sqrt(sums["forces_sq"] / nf)
    return out


def write_metrics_csv(history: list[dict], path: str | Path) -> None:
    """One row per epoch, columns COLUMNS (missing values empty); written atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _format(row.get(k)) for k in COLUMNS})
    atomic_write_bytes(Path(path), lambda fh: fh.write(text.getvalue().encode()))


def read_metrics_csv(path: str | Path) -> list[dict]:
    """Rows of metrics.csv as dicts of floats (empty cells become None)."""
    with open(path, newline="") as fh:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
                for row in csv.DictReader(fh)]


def _format(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.8g}"
    return value


def plot_learning_curve(history: list[dict], path: str | Path) -> None:
    """Train/val loss and validation MAEs against epoch (log scale), as a PNG; a dashed line
    marks the start of stage two (rows with "stage" 2)."""
    # lazy: matplotlib is slow to import (~0.8 s with pyplot), and the Agg backend is set before pyplot
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_mae) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        ax_loss.plot(epochs, [r.get(key) for r in history], label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    for key, label in (("val_energy_mae_meV", "energy MAE (meV)"),
                       ("val_forces_mae_meV_per_A", "force MAE (meV/Å)")):
        values = [r.get(key) for r in history]
        if any(v is not None for v in values):
            ax_mae.plot(epochs, values, label=label)
    ax_mae.set(xlabel="epoch", yscale="log", title="validation MAE")
    two = [r["epoch"] for r in history if (r.get("stage") or 1) >= 2]
    if two:
        for ax in (ax_loss, ax_mae):
            ax.axvline(two[0] - 0.5, color="grey", linestyle="--", linewidth=1,
                       label="stage two" if ax is ax_loss else None)
    ax_loss.legend()
    ax_mae.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(Path(path), lambda fh: fh.write(buffer.getvalue()))
