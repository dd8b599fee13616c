"""training.batch_size "auto" (the default): about 400 atoms per batch, so a run on large cells
takes several steps per epoch where ten cells per batch took one or two; small molecules keep
ten structures per batch; a number is taken as it is."""
import ase.io
import numpy as np
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot.train import load_config, train
from mlpot.train.metrics import read_metrics_csv
from test_train_fixtures import TINY_MODEL, write_emt_data


def emt_cells(n: int, path):
    """n Cu cells of 108 atoms (3×3×3 fcc, displaced 0.1 Å) with EMT labels, as extxyz."""
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
        atoms.positions += rng.normal(scale=0.1, size=atoms.positions.shape)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append(atoms)
    ase.io.write(str(path), frames, format="extxyz")
    return path


def run(tmp_path, data, n_train, batch_size=None):
    training = {"max_epochs": 1, "num_threads": 1, "scheduler": "none"}
    if batch_size is not None:
        training["batch_size"] = batch_size
    cfg = {"data": {"train": str(data), "n_train": n_train, "n_val": 2},
           "model": dict(TINY_MODEL, n_interactions=1), "training": training, "output": str(tmp_path / "run")}
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    lines = []
    train(load_config(tmp_path / "config.yaml"), quiet=False, log=lines.append)
    assert read_metrics_csv(tmp_path / "run" / "metrics.csv")[0]["epoch"] == 1
    return "\n".join(lines)


def test_auto_batches_large_cells_by_atoms(tmp_path):
    log = run(tmp_path, emt_cells(6, tmp_path / "cells.xyz"), n_train=4)
    assert "batch size 4 structures (auto" in log          # 400 atoms / 108 per cell


def test_auto_keeps_ten_small_molecules_and_a_number_wins(tmp_path):
    data = write_emt_data(tmp_path / "clusters.xyz", n=14)
    assert "batch size 10 structures (auto" in run(tmp_path / "a", data, n_train=12)
    assert "batch size" not in run(tmp_path / "b", data, n_train=12, batch_size=3)
