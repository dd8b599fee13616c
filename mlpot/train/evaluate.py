"""Errors of a trained model on labelled structures, and a parity plot.

    from mlpot.train.evaluate import load_model, evaluate_potential, predict, parity_plot
    potential = load_model("runs/ethanol/best.ckpt")         # or an exported "model.pt"
    errors = evaluate_potential(potential, structures)      # dict, meV / meV/Å
    parity_plot(predict(potential, structures), "parity.png")

Energies are compared per structure (meV) and per atom (meV/atom); forces per Cartesian
component (meV/Å). Labels are read from each structure's calculator results (eV, eV/Å).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from mlpot import keys as K
from mlpot.data.batch import atoms_to_graph, labels_from_atoms
from mlpot.data.neighbors import neighbor_list
from mlpot.deploy.export import load_model as load_exported
from mlpot.deploy.pt2_model import PT2_SUFFIX
from mlpot.train.baseline import baseline, collate_relative, reference_energies, take_atomref
from mlpot.train.checkpoint import load_potential


class ExportedModel:
    """An exported model file (mlpot.deploy.export), evaluated through its own scripted forward one
    structure at a time — what the ASE calculator and LAMMPS run — with its reference
    energies taken out of the module and added back in float64, as for checkpoints."""

    def __init__(self, module, metadata: dict, device="cpu"):
        self.module, self.metadata = module, metadata
        self.cutoff = float(metadata["cutoff"])
        self.species = [int(z) for z in metadata["species"]]
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[metadata["dtype"]]
        self.device = torch.device(device)
        self.atomref = np.zeros(100)
        inner = getattr(module, "potential", None)
        if inner is not None and hasattr(inner, "atomref"):   # sum relative to it in float64
            self.atomref = inner.atomref.detach().double().cpu().numpy().copy()
            with torch.no_grad():
                inner.atomref.zero_()

    def energy_forces(self, atoms) -> tuple[float, np.ndarray]:
        """(energy eV, forces [N, 3] eV/Å) of one ase.Atoms."""
        i, j, S = neighbor_list(atoms, self.cutoff)
        cell = np.asarray(atoms.cell.array, dtype=float)

        def tensor(x, dtype=self.dtype):
            return torch.as_tensor(np.asarray(x), dtype=dtype, device=self.device)

        out = self.module(tensor(atoms.positions), tensor(atoms.numbers, torch.long),
                          tensor(np.stack([i, j]), torch.long), tensor(S @ cell), tensor(cell),
                          len(atoms), False)
        energy, forces = out["energy"].sum(), out["forces"]
        if int(self.metadata.get("n_members", 1)) > 1:   # a committee .pt2: [M] and [M, N, 3], the mean
            energy, forces = out["energy"].mean(), forces.mean(0)
        return float(energy) + float(self.atomref[atoms.numbers].sum()), forces.double().cpu().numpy()


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """A training checkpoint (.ckpt) as a Potential, or an exported model file (.pt or .pt2, see
    mlpot.deploy.export and mlpot.deploy.pt2) as an ExportedModel."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} not found")
    if path.suffix in (".pt", PT2_SUFFIX):
        module, metadata = load_exported(path, device=device)
        return ExportedModel(module, metadata, device)
    return load_potential(path, device=device)


def check_species(model, structures) -> None:
    """ValueError if the structures hold elements the model was not trained on."""
    present = sorted({int(z) for atoms in structures for z in np.unique(atoms.numbers)})
    unknown = sorted(set(present) - set(model.species))
    if unknown:
        raise ValueError(f"the data holds elements Z={unknown} that the model was not trained on "
                         f"(species {list(model.species)}); evaluate data of those elements only")


def _predict_each(structures, evaluate) -> dict:
    """predict()'s arrays, one structure at a time: evaluate(atoms) -> {"energy": eV, "forces":
    [N, 3] eV/Å, and "dipole" [3] e·Å if the model has one}; references from each structure's
    calculator results. dipole_ref/dipole_pred [B, 3] where every structure has both."""
    out: dict[str, list] = {"n_atoms": [], "energy_ref": [], "energy_pred": [], "forces_ref": [],
                            "forces_pred": [], "dipole_ref": [], "dipole_pred": []}
    for k, atoms in enumerate(structures):
        labels = labels_from_atoms(atoms)
        if K.ENERGY not in labels:
            raise ValueError(f"structure {k} has no energy label; evaluate labelled data")
        predicted = evaluate(atoms)
        out["n_atoms"].append([len(atoms)])
        out["energy_ref"].append(labels[K.ENERGY])
        out["energy_pred"].append([predicted["energy"]])
        if K.FORCES in labels:
            out["forces_ref"].append(labels[K.FORCES])
            out["forces_pred"].append(predicted["forces"])
        if K.DIPOLE in labels and "dipole" in predicted:
            out["dipole_ref"].append(labels[K.DIPOLE])
            out["dipole_pred"].append(np.reshape(predicted["dipole"], (1, 3)))
    result = {k: np.concatenate(v) for k, v in out.items() if v}
    for name in ("forces", "dipole"):
        if len(out[f"{name}_ref"]) != len(structures):
            result.pop(f"{name}_ref", None), result.pop(f"{name}_pred", None)
    return result


def _predict_exported(model: ExportedModel, structures) -> dict:
    def evaluate(atoms):
        energy, forces = model.energy_forces(atoms)
        return {"energy": energy, "forces": forces}
    return _predict_each(structures, evaluate)


def predict(potential, structures, batch_size: int = 32, device=None) -> dict:
    """Reference and predicted values for `structures` (ase.Atoms with labels) from a
    Potential (batched) or an ExportedModel (one structure at a time):
    n_atoms [B], energy_ref/energy_pred [B] eV, and forces_ref/forces_pred [N, 3] eV/Å
    when every structure has forces. Energies of a Potential are summed relative to its
    reference energies and the references added back in float64 (mlpot.train.baseline), so
    float32 models are not limited by float32's resolution of large total energies."""
    if len(structures) == 0:
        raise ValueError("no structures to evaluate")
    check_species(potential, structures)
    if isinstance(potential, ExportedModel):
        return _predict_exported(potential, structures)
    param = next(iter(potential.parameters()), None)
    dtype = param.dtype if param is not None else torch.float32
    device = device or (param.device if param is not None else "cpu")
    model = copy.deepcopy(potential)
    atomref = take_atomref(model)   # energies relative to the references, summed in float64
    out: dict[str, list] = {"n_atoms": [], "energy_ref": [], "energy_pred": [],
                            "forces_ref": [], "forces_pred": []}
    for start in range(0, len(structures), batch_size):
        graphs = [atoms_to_graph(a, potential.cutoff) for a in structures[start:start + batch_size]]
        energies = reference_energies(graphs)
        if energies is None:
            raise ValueError(f"structures {start}..{start + len(graphs) - 1}: not every structure has an "
                             f"energy label; evaluate labelled data")
        batch = collate_relative(graphs, atomref, dtype, device)
        pred = model(batch, compute_forces=True)
        out["n_atoms"].append(batch[K.N_ATOMS].cpu().numpy())
        out["energy_ref"].append(energies)
        out["energy_pred"].append(pred[K.ENERGY].detach().double().cpu().numpy() + baseline(graphs, atomref))
        if K.FORCES in batch:
            out["forces_ref"].append(np.concatenate([g[K.FORCES] for g in graphs]))
            out["forces_pred"].append(pred[K.FORCES].detach().double().cpu().numpy())
    result = {k: np.concatenate(v) for k, v in out.items() if v}
    if "forces_ref" in result and len(out["forces_ref"]) != len(out["energy_ref"]):
        result.pop("forces_ref"), result.pop("forces_pred")  # forces only where every batch has them
    return result


def errors(pred: dict) -> dict:
    """MAE and RMSE from `predict` output: energy in meV and meV/atom, forces in meV/Å."""
    de = pred["energy_pred"] - pred["energy_ref"]
    per_atom = de / pred["n_atoms"]
    result = {"n_structures": int(len(de)),
              "energy_mae_meV": 1000 * float(np.mean(np.abs(de))),
              "energy_rmse_meV": 1000 * float(np.sqrt(np.mean(de ** 2))),
              "energy_mae_meV_per_atom": 1000 * float(np.mean(np.abs(per_atom))),
              "energy_rmse_meV_per_atom": 1000 * float(np.sqrt(np.mean(per_atom ** 2)))}
    if "forces_ref" in pred:
        df = pred["forces_pred"] - pred["forces_ref"]
        result.update(forces_mae_meV_per_A=1000 * float(np.mean(np.abs(df))),
                      forces_rmse_meV_per_A=1000 * float(np.sqrt(np.mean(df ** 2))),
                      n_force_components=int(df.size))
    return result


def calculator_errors(calc, structures) -> dict:
    """errors() of any ASE calculator `calc` (an MLPotCalculator, a committee) on labelled
    structures (their calc.results: energy, forces, dipole), one structure at a time, plus
    "n" (structures) and the dipole MAE "dipole_mae_eA" (e·Å) where both have dipoles."""
    def evaluate(atoms):
        work = atoms.copy()
        work.calc = calc
        predicted = {"energy": work.get_potential_energy(), "forces": work.get_forces()}
        if "dipole" in calc.implemented_properties:
            predicted["dipole"] = work.get_dipole_moment()
        return predicted

    pred = _predict_each(structures, evaluate)
    result = {"n": len(structures), **errors(pred)}
    if "dipole_ref" in pred:
        result["dipole_mae_eA"] = float(np.mean(np.abs(pred["dipole_pred"] - pred["dipole_ref"])))
    return result


def evaluate_potential(potential, structures, batch_size: int = 32, device=None) -> dict:
    """errors(predict(...)): MAE/RMSE of energies and forces and the number of structures."""
    return errors(predict(potential, structures, batch_size, device))


def parity_plot(pred: dict, path: str | Path) -> None:
    """Predicted against reference energy per atom (meV/atom, mean removed) and force
    components (eV/Å), with MAEs in the titles, as a PNG."""
    # lazy: matplotlib is slow to import (~0.8 s with pyplot), and the Agg backend is set before pyplot
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    err = errors(pred)
    panels = [("energy per atom (eV/atom)", pred["energy_ref"] / pred["n_atoms"],
               pred["energy_pred"] / pred["n_atoms"], f"MAE {err['energy_mae_meV_per_atom']:.3g} meV/atom")]
    if "forces_ref" in pred:
        panels.append(("force component (eV/Å)", pred["forces_ref"].ravel(), pred["forces_pred"].ravel(),
                       f"MAE {err['forces_mae_meV_per_A']:.3g} meV/Å"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    for ax, (label, ref, prd, title) in zip(axes[0], panels):
        ax.scatter(ref, prd, s=4, alpha=0.5)
        lo, hi = float(min(ref.min(), prd.min())), float(max(ref.max(), prd.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set(xlabel=f"reference {label}", ylabel=f"predicted {label}", title=title)
    fig.suptitle(f"{err['n_structures']} structures")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
