"""Large total energies (float32 resolves −60 000 eV only to ~4 meV) do not limit training
or evaluation: both compare energies relative to the reference energies, in float64."""
import copy

import numpy as np
import torch
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot import keys as K
from mlpot.data.batch import atoms_to_graph
from mlpot.train.evaluate import evaluate_potential
from mlpot.model.config import ModelConfig, build_potential
from mlpot.train.baseline import collate_relative
from test_train_fixtures import TINY_MODEL, emt_clusters

OFFSET = -10_000.0  # eV per atom, the size of a real per-atom reference energy (−2040 eV for O)


def self_labelled(potential, structures):
    """The structures labelled by `potential` evaluated in float64: a perfect model's data."""
    exact = copy.deepcopy(potential).double()
    out = []
    for atoms in structures:
        batch = collate_relative([atoms_to_graph(atoms, potential.cutoff, labels=False)], np.zeros(100),
                                 torch.float64, "cpu")
        pred = exact(batch, compute_forces=True)
        labelled = atoms.copy()
        labelled.calc = SinglePointCalculator(labelled, energy=float(pred[K.ENERGY][0].detach()),
                                              forces=pred[K.FORCES].detach().numpy())
        out.append(labelled)
    return out


def test_float32_model_evaluated_to_sub_meV_on_large_energies():
    torch.manual_seed(0)
    potential = build_potential(ModelConfig(**TINY_MODEL), [29])
    potential.set_energy_statistics({29: OFFSET}, scale=0.5)
    structures = self_labelled(potential, emt_clusters(20, seed=4))
    assert max(abs(a.calc.results["energy"]) for a in structures) > 45_000
    errors = evaluate_potential(potential.float(), structures)
    # plain float32 totals would be off by up to half a float32 step, ~2-4 meV here
    assert errors["energy_mae_meV"] < 0.05
    assert errors["forces_mae_meV_per_A"] < 0.05


def test_relative_labels_keep_float64_differences():
    structures = emt_clusters(4, seed=5)
    graphs = [atoms_to_graph(a, 4.0) for a in structures]
    for g in graphs:
        g[K.ENERGY] = g[K.ENERGY] + OFFSET * len(g[K.ATOMIC_NUMBERS])
    atomref = np.zeros(100)
    atomref[29] = OFFSET
    batch = collate_relative(graphs, atomref, torch.float32, "cpu")
    expected = [a.calc.results["energy"] for a in structures]
    np.testing.assert_allclose(batch[K.ENERGY].numpy(), expected, rtol=1e-6, atol=1e-6)


def test_exported_model_evaluated_to_sub_meV_on_large_energies(tmp_path):
    from mlpot.train.evaluate import load_model
    from mlpot.deploy.export import export_model

    torch.manual_seed(1)
    potential = build_potential(ModelConfig(**TINY_MODEL), [29])
    potential.set_energy_statistics({29: OFFSET}, scale=0.5)
    structures = self_labelled(potential, emt_clusters(10, seed=6))
    export_model(potential, tmp_path / "model.pt", dtype="float32")
    errors = evaluate_potential(load_model(tmp_path / "model.pt"), structures)
    assert errors["energy_mae_meV"] < 0.05 and errors["forces_mae_meV_per_A"] < 0.05
