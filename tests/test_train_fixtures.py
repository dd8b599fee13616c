"""Small labelled data and configs for the training tests (helpers, plus a check of them).

EMT-labelled Cu clusters of 5 to 8 atoms: independent of ../shared, a few ms to make.
"""
from pathlib import Path

import numpy as np
import yaml

TINY_MODEL = {"representation": "schnet", "cutoff": 4.0, "n_atom_basis": 16, "n_filters": 16,
              "n_interactions": 2, "n_rbf": 8}


def emt_clusters(n: int = 60, seed: int = 0) -> list:
    """n Cu clusters (5-8 atoms, fcc fragments displaced by 0.15 Å) with EMT energy and forces."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    crystal = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    crystal.pbc = False
    crystal.cell[:] = 0.0
    order = np.argsort(np.linalg.norm(crystal.positions - crystal.positions[0], axis=1))
    structures = []
    for _ in range(n):
        atoms = crystal[order[:rng.integers(5, 9)]]
        atoms.positions += rng.normal(scale=0.15, size=atoms.positions.shape)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        structures.append(atoms)
    return structures


def write_emt_data(path: Path, n: int = 60, seed: int = 0) -> Path:
    """extxyz file of emt_clusters(n, seed)."""
    import ase.io

    ase.io.write(str(path), emt_clusters(n, seed), format="extxyz")
    return path


def write_config(folder: Path, data: Path, training: dict | None = None, model: dict | None = None,
                 n_train: int = 40, n_val: int = 20, output: str = "run") -> Path:
    """A training YAML in `folder` with a tiny SchNet; paths relative to the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"data": {"train": str(Path(data).resolve()), "n_train": n_train, "n_val": n_val},
           "model": {**TINY_MODEL, **(model or {})},
           "training": {"batch_size": 8, "max_epochs": 3, "lr": 5e-3, "num_threads": 1,
                        **(training or {})},
           "output": output}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_emt_clusters_are_labelled_and_varied():
    structures = emt_clusters(12, seed=1)
    sizes = {len(a) for a in structures}
    assert len(sizes) > 1
    for atoms in structures:
        results = atoms.calc.results
        assert np.isfinite(results["energy"]) and results["forces"].shape == (len(atoms), 3)
