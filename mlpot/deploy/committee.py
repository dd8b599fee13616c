"""Committee statistics: the mean prediction of M models and how much they disagree.

The disagreement is what DeePMD calls the model deviation and SchNetPack the force std:

    forces_std[i] = sqrt( mean_m |F_m,i − F̄_i|² )     (eV/Å, per atom; population std, ddof 0)
    uncertainty   = max_i forces_std[i]                (eV/Å)
    energy_std    = sqrt( mean_m (E_m − Ē)² )          (eV)

The LAMMPS plugin writes the same max / min / mean of forces_std (mlpot/lammps/csrc).
"""
from __future__ import annotations

import numpy as np

# what an ASE committee calculator adds to its results
COMMITTEE_PROPERTIES = ("energy_std", "forces_std", "uncertainty")

# metadata keys that must agree between committee members, and what each means to a user
MUST_AGREE = {"cutoff": "cutoff (Å)", "species": "elements", "outputs": "outputs"}


class CommitteeError(ValueError):
    """Committee members that cannot be combined; the message names the files and the field."""


# what a run can halt on: setting -> (per-atom result, what it measures, unit)
HALT_MEASURES = {"halt_deviation": ("forces_std", "committee force deviation", "eV/Å"),
                 "halt_extrapolation": ("extrapolation_grade", "descriptor extrapolation grade", "training stds")}


class ExtrapolationError(RuntimeError):
    """The uncertainty passed the halt threshold: the structure is outside what the model learned.
    deviation (the committee's force deviation in eV/Å, or a single wACSF / ACSF model's
    extrapolation grade: `setting`), atom (index of the largest), threshold."""

    def __init__(self, deviation: float, atom: int, threshold: float, saved: str | None = None,
                 setting: str = "halt_deviation"):
        _, measure, unit = HALT_MEASURES[setting]
        where = f"; the frame was appended to {saved}" if saved else ""
        super().__init__(f"{measure} {deviation:.3g} {unit} at atom {atom} passed {setting} {threshold:g} {unit}: "
                         f"the structure has left the training data{where}. Label it with the reference and retrain "
                         f"(mlpot learn), or raise {setting}")
        self.deviation, self.atom, self.threshold, self.saved = deviation, atom, threshold, saved
        self.setting = setting


def committee_statistics(energies, forces) -> dict:
    """Mean and spread of a committee's predictions.

    energies: [M] eV; forces: [M, N, 3] eV/Å. Returns energy (mean, eV), energy_std (eV),
    forces (mean, [N, 3]), forces_std ([N] eV/Å) and uncertainty (max of forces_std, eV/Å;
    0 for no atoms)."""
    energies = np.asarray(energies, dtype=float)
    forces = np.asarray(forces, dtype=float)
    if energies.ndim != 1 or forces.ndim != 3 or forces.shape[0] != energies.shape[0] or forces.shape[2] != 3:
        raise ValueError(f"need energies [M] and forces [M, N, 3], got {energies.shape} and {forces.shape}")
    mean_forces = forces.mean(axis=0)
    forces_std = np.sqrt(((forces - mean_forces) ** 2).sum(axis=2).mean(axis=0))
    return {"energy": float(energies.mean()), "energy_std": float(energies.std()),
            "forces": mean_forces, "forces_std": forces_std,
            "uncertainty": float(forces_std.max()) if forces_std.size else 0.0}


def deviation_summary(forces_std) -> dict:
    """max, min and mean of the per-atom force deviation [N] (eV/Å): one line of the LAMMPS file."""
    forces_std = np.asarray(forces_std, dtype=float)
    return {"max": float(forces_std.max()), "min": float(forces_std.min()), "mean": float(forces_std.mean())}


def check_members(metadatas, paths) -> None:
    """Refuse committee members whose cutoff, elements or outputs differ, naming both files."""
    if len(metadatas) < 1:
        raise CommitteeError("a committee needs at least one model file")
    first, first_path = metadatas[0], paths[0]
    for meta, path in zip(metadatas[1:], paths[1:]):
        for key, what in MUST_AGREE.items():
            a, b = first.get(key), meta.get(key)
            if key == "cutoff":
                same = a is not None and b is not None and abs(float(a) - float(b)) < 1e-9
            else:
                same = (sorted(a) if isinstance(a, list) else a) == (sorted(b) if isinstance(b, list) else b)
            if not same:
                raise CommitteeError(f"committee members differ in {what}: {first_path} has {a}, {path} has {b}; "
                                     "use models trained on the same elements with the same cutoff "
                                     "(e.g. the members of one `mlpot train` run with training.ensemble)")
