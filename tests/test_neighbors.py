"""The neighbour list gives exactly ASE's primitive_neighbor_list pairs."""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.neighborlist import primitive_neighbor_list
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from mlpot.data.neighbors import neighbor_list, neighbor_list_arrays


def ase_pairs(positions, cell, pbc, cutoff):
    i, j, S = primitive_neighbor_list("ijS", pbc, cell, positions, cutoff, self_interaction=False)
    return set(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())))


def our_pairs(positions, cell, pbc, cutoff):
    i, j, S = neighbor_list_arrays(positions, cell, pbc, cutoff)
    assert i.dtype == j.dtype == S.dtype == np.int64
    pairs = list(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())))
    assert len(pairs) == len(set(pairs)), "duplicate pairs"
    return set(pairs)


def assert_same_as_ase(positions, cell, pbc, cutoff):
    """Same pairs as ASE; a pair may differ only if its length ties the cutoff to 1e-9 Å."""
    ours, ref = our_pairs(positions, cell, pbc, cutoff), ase_pairs(positions, cell, pbc, cutoff)
    for i, j, S in ours ^ ref:
        d = np.linalg.norm(positions[j] - positions[i] + np.array(S) @ cell)
        assert abs(d - cutoff) < 1e-9, f"pair {(i, j, S)} at {d:.6f} Å: only in {'ours' if (i, j, S) in ours else 'ASE'}"
    return ours


finite = st.floats(-6, 6, allow_nan=False, allow_infinity=False)


def heights(cell):
    """Perpendicular distances between opposite faces of the cell (Å)."""
    volume = abs(np.linalg.det(cell))
    return [volume / np.linalg.norm(np.cross(cell[(d + 1) % 3], cell[(d + 2) % 3])) for d in range(3)]


@st.composite
def cells(draw, min_height=1.0):
    """Random triclinic cells: lower-triangular with diagonal in [min_height, 8] Å and shears up
    to ±3 Å (damped until every height is >= min_height), then rotated at random."""
    diagonal = draw(arrays(float, 3, elements=st.floats(min_height, 8)))
    shear = draw(arrays(float, 3, elements=st.floats(-3, 3)))
    cell = np.diag(diagonal)
    for factor in (1.0, 0.5, 0.25, 0.0):
        cell[1, 0], cell[2, 0], cell[2, 1] = factor * shear
        if min(heights(cell)) >= min_height:
            break
    angles = draw(arrays(float, 3, elements=st.floats(0, 2 * np.pi)))
    rotation = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s_ = np.cos(angle), np.sin(angle)
        r = np.eye(3)
        a, b = [k for k in range(3) if k != axis]
        r[a, a], r[a, b], r[b, a], r[b, b] = c, -s_, s_, c
        rotation = rotation @ r
    return cell @ rotation.T


# Cell heights >= 1 Å with cutoffs up to 6 Å: up to ~6 images each way. Smaller heights make
# ASE's reference list (not ours) take minutes and gigabytes; thinner cells are covered by
# test_zero_atoms_and_one_atom and test_cell_shorter_than_cutoff_in_every_direction.
@settings(max_examples=300, deadline=None)
@given(cell=cells(), pbc=arrays(bool, 3), n=st.integers(0, 10), data=st.data(),
       cutoff=st.floats(0.5, 6.0))
def test_random_cells_match_ase(cell, pbc, n, data, cutoff):
    # positions spread over several cells, so many are outside (unwrapped)
    positions = data.draw(arrays(float, (n, 3), elements=st.floats(-12, 12)))
    assert_same_as_ase(positions, cell, pbc, cutoff)


@pytest.mark.parametrize("pbc", [(False,) * 3, (True,) * 3, (True, True, False), (True, False, False)])
def test_zero_atoms_and_one_atom(pbc):
    cell = np.eye(3) * 2.0
    assert our_pairs(np.zeros((0, 3)), cell, pbc, 3.0) == set()
    one = assert_same_as_ase(np.array([[0.3, 0.1, 7.0]]), cell, pbc, 3.0)
    # one atom in a 2 Å periodic cell with a 3 Å cutoff sees only its own images
    assert all(i == j == 0 and any(S) for i, j, S in one)
    assert (len(one) > 0) == any(pbc)


def test_isolated_molecule_any_cell():
    mol = molecule("CH3CH2OH")
    for cell in (np.zeros((3, 3)), np.eye(3) * 2.0, [[3, 0, 0], [2, 2, 0], [0, 1, 1]]):
        pairs = assert_same_as_ase(mol.positions, np.array(cell, float), [False] * 3, 3.0)
        assert all(S == (0, 0, 0) for _, _, S in pairs)
    assert len(pairs) == 58  # ethanol pairs within 3 Å (ASE gives the same)


def test_strongly_skewed_cell():
    cell = np.array([[4.0, 0, 0], [3.9, 0.6, 0], [3.5, 0.3, 0.7]])
    rng = np.random.default_rng(0)
    positions = rng.uniform(-5, 5, (6, 3))
    pairs = assert_same_as_ase(positions, cell, [True] * 3, 4.5)
    assert len(pairs) > 100


def test_cell_shorter_than_cutoff_in_every_direction():
    atoms = bulk("Cu", "fcc", a=3.6)  # primitive cell, ~2.5 Å vectors, 5 Å cutoff
    pairs = assert_same_as_ase(atoms.positions, atoms.cell.array, atoms.pbc, 5.0)
    assert len(pairs) == 42  # fcc shells within 5 Å: 12 + 6 + 24


def test_slab_keeps_physical_cell():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 1))
    atoms.pbc = [True, True, False]
    atoms.positions[:, 2] += 30.0  # far outside the cell in the open direction
    cell_before = atoms.cell.array.copy()
    pairs = assert_same_as_ase(atoms.positions, atoms.cell.array, atoms.pbc, 4.0)
    assert all(S[2] == 0 for _, _, S in pairs)
    np.testing.assert_array_equal(atoms.cell.array, cell_before)


def test_unwrapped_positions_give_true_vectors():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    rng = np.random.default_rng(1)
    moved = atoms.copy()
    moved.positions += rng.integers(-3, 4, (len(atoms), 1)) * atoms.cell.array[0]
    i, j, S = neighbor_list(moved, 3.0)
    vec = moved.positions[j] - moved.positions[i] + S @ moved.cell.array
    i0, j0, S0 = neighbor_list(atoms, 3.0)
    vec0 = atoms.positions[j0] - atoms.positions[i0] + S0 @ atoms.cell.array
    np.testing.assert_allclose(np.sort(np.linalg.norm(vec, axis=1)), np.sort(np.linalg.norm(vec0, axis=1)))
    assert np.all(np.linalg.norm(vec, axis=1) < 3.0)


def test_sorted_by_center():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    i, _, _ = neighbor_list(atoms, 5.0)
    assert np.all(np.diff(i) >= 0)


@pytest.mark.parametrize("cutoff", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_cutoff(cutoff):
    with pytest.raises(ValueError, match="cutoff"):
        neighbor_list(molecule("H2O"), cutoff)


def test_nan_positions():
    atoms = molecule("H2O")
    atoms.positions[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf \(atoms \[1\]\)"):
        neighbor_list(atoms, 3.0)


def test_periodic_direction_with_zero_cell_vector():
    atoms = Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]], cell=[[3, 0, 0], [0, 3, 0], [0, 0, 0]],
                  pbc=[True, True, True])
    with pytest.raises(ValueError, match="direction 2 is periodic but cell vector 2 is zero"):
        neighbor_list(atoms, 3.0)


def test_degenerate_periodic_cell():
    atoms = Atoms("H", cell=[[3, 0, 0], [6, 0, 0], [0, 0, 3]], pbc=True)
    with pytest.raises(ValueError, match="linearly dependent"):
        neighbor_list(atoms, 3.0)


def test_open_direction_may_have_zero_vector():
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]], cell=[[3, 0, 0], [0, 3, 0], [0, 0, 0]],
                  pbc=[True, True, False])
    assert_same_as_ase(atoms.positions, atoms.cell.array, atoms.pbc, 3.5)
