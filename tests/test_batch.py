import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot import keys as K
from mlpot.data import atoms_to_batch, atoms_to_graph, collate


def labelled(atoms, energy):
    atoms = atoms.copy()
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.ones((len(atoms), 3)) * energy)
    return atoms


def test_mixed_periodic_and_molecules():
    water = molecule("H2O")
    si = bulk("Si", "diamond", a=5.43)  # 2 atoms, cell shorter than the cutoff
    slab = bulk("Cu", "fcc", a=3.6, cubic=True)
    slab.pbc = [True, True, False]
    structures = [water, si, slab]
    b = atoms_to_batch(structures, cutoff=4.0, dtype=torch.float64, labels=False)
    n = [len(a) for a in structures]
    assert b[K.N_ATOMS].tolist() == n
    assert b[K.BATCH].tolist() == [0] * 3 + [1] * 2 + [2] * 4
    assert b[K.POSITIONS].dtype == torch.float64 and b[K.POSITIONS].shape == (9, 3)
    assert b[K.CELL].shape == (3, 3, 3) and b[K.PBC].tolist()[2] == [True, True, False]
    assert b[K.ATOMIC_NUMBERS].dtype == torch.int64
    # edges never cross structures and reproduce each structure's own list
    i, j = b[K.EDGE_INDEX]
    assert torch.equal(b[K.BATCH][i], b[K.BATCH][j])
    start = 0
    e0 = 0
    for atoms in structures:
        g = atoms_to_graph(atoms, 4.0, labels=False)
        e = g[K.EDGE_INDEX].shape[1]
        np.testing.assert_array_equal(b[K.EDGE_INDEX][:, e0:e0 + e].numpy() - start, g[K.EDGE_INDEX])
        np.testing.assert_array_equal(b[K.EDGE_SHIFTS][e0:e0 + e].numpy(), g[K.EDGE_SHIFTS])
        start += len(atoms)
        e0 += e
    assert e0 == b[K.EDGE_INDEX].shape[1]
    # edge vectors from the batch are shorter than the cutoff
    cell_of_edge = b[K.CELL][b[K.BATCH][i]]
    vec = b[K.POSITIONS][j] - b[K.POSITIONS][i] + torch.einsum("ek,ekl->el", b[K.EDGE_SHIFTS], cell_of_edge)
    assert vec.norm(dim=1).max() < 4.0


def test_labels_and_dtype():
    structures = [labelled(molecule("H2O"), -1.0), labelled(molecule("NH3"), -2.0)]
    b = atoms_to_batch(structures, cutoff=3.0)
    assert b[K.ENERGY].tolist() == [-1.0, -2.0]
    assert b[K.ENERGY].dtype == torch.float32
    assert b[K.FORCES].shape == (7, 3)


def test_label_missing_in_one_structure_is_dropped():
    b = atoms_to_batch([labelled(molecule("H2O"), -1.0), molecule("NH3")], cutoff=3.0)
    assert K.ENERGY not in b


def test_empty_batch_refused():
    with pytest.raises(ValueError, match="empty"):
        collate([])
