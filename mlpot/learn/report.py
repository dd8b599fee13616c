"""The learning curves of `mlpot learn` as a PNG: test error against reference calls, and the
explored frames' deviation against iteration."""
from __future__ import annotations

from pathlib import Path


def plot_history(history: list, path: Path) -> None:
    # lazy: matplotlib is slow to import (~0.8 s with pyplot), and the Agg backend is set before pyplot
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    tested = [r for r in history if "test_forces_mae_meV_per_A" in r]
    if tested:
        calls = [r["n_reference"] for r in tested]
        left.plot(calls, [r["test_forces_mae_meV_per_A"] for r in tested], "o-", label="committee mean")
        left.plot(calls, [r["test_member_forces_mae_meV_per_A"] for r in tested], "s--", label="member 0")
        left.set_xlabel("reference calls (structures in the store)")
        left.set_ylabel("test force MAE (meV/Å)")
        left.legend()
    else:
        left.text(0.5, 0.5, "no learn.test set", ha="center", transform=left.transAxes)
    explored = [r for r in history if "fraction_above_lo" in r]
    if explored:
        its = [r["iteration"] for r in explored]
        right.plot(its, [r["fraction_above_lo"] for r in explored], "o-", label="fraction above trust_lo")
        right.set_xlabel("iteration")
        right.set_ylabel("fraction of explored frames")
        twin = right.twinx()
        twin.plot(its, [r["deviation_mean"] for r in explored], "s--", color="C1", label="mean deviation")
        twin.set_ylabel("mean max-force deviation (eV/Å)")
        right.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
