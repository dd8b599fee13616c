"""SchNet's pair path (filters once per unordered pair, messages both ways) against the
straightforward per-edge reference path: same energies, forces and virials, on a molecule,
a periodic cell smaller than the cutoff (self-images) and a batch; exported model too; lists
that are not symmetric are detected and take the reference path."""
import pytest
import torch
from ase.build import bulk, molecule

from mlpot import keys as K
from mlpot.data.batch import atoms_to_batch
from mlpot.deploy.export import script_potential
from mlpot.model.config import ModelConfig, build_potential
from mlpot.model.representations.schnet import half_of_symmetric_list

CUTOFF = 4.0  # Å


def tiny_schnet(dtype):
    torch.manual_seed(0)
    cfg = ModelConfig(n_atom_basis=16, n_filters=16, n_interactions=2, n_rbf=8, cutoff=CUTOFF)
    potential = build_potential(cfg, [1, 6, 8, 14])
    with torch.no_grad():  # larger filters than at initialisation: a more demanding comparison
        for p in potential.representation.parameters():
            p.mul_(2.0)
    return potential.to(dtype).eval()


def structures(name):
    ethanol = molecule("CH3CH2OH")
    ethanol.rattle(0.05, seed=1)
    silicon = bulk("Si", "diamond", a=5.43)           # 2 atoms, cell edges 3.8 Å < cutoff
    silicon.rattle(0.05, seed=2)
    silicon.cell[0, 1] += 0.1
    silicon.set_scaled_positions(silicon.get_scaled_positions())
    one_atom = bulk("Si", "fcc", a=3.2)                # 1 atom: only self-image edges
    return {"molecule": [ethanol], "small_cell": [silicon], "one_atom_cell": [one_atom],
            "batch": [ethanol, silicon, one_atom]}[name]


def evaluate(potential, batch, use_pairs: bool):
    potential.representation.use_pairs = use_pairs
    out = potential(dict(batch), compute_forces=True, compute_stress=True)
    potential.representation.use_pairs = True
    return {k: v.detach() for k, v in out.items()}


def pair_mask(batch):
    i, j = batch[K.EDGE_INDEX]
    positions = batch[K.POSITIONS]
    cell = batch[K.CELL].reshape(-1, 3, 3)
    shifts = torch.einsum("ek,ekl->el", batch[K.EDGE_SHIFTS], cell[batch[K.BATCH][i]])
    vectors = positions[j] - positions[i] + shifts
    return half_of_symmetric_list(i, j, vectors, positions.shape[0])


@pytest.mark.parametrize("name", ["molecule", "small_cell", "one_atom_cell", "batch"])
def test_pair_path_equals_reference_float64(name):
    potential = tiny_schnet(torch.float64)
    batch = atoms_to_batch(structures(name), CUTOFF, dtype=torch.float64)
    mask = pair_mask(batch)
    assert mask is not None and 2 * int(mask.sum()) == batch[K.EDGE_INDEX].shape[1]
    fast, reference = evaluate(potential, batch, True), evaluate(potential, batch, False)
    assert max(float(reference[K.FORCES].abs().max()), float(reference[K.VIRIAL].abs().max())) > 1e-3
    for key in (K.ENERGY, K.ENERGIES, K.FORCES, K.VIRIAL):
        scale = float(reference[key].abs().max()) + 1e-12
        assert float((fast[key] - reference[key]).abs().max()) <= 1e-12 * max(scale, 1.0), key


@pytest.mark.parametrize("name", ["molecule", "small_cell", "batch"])
def test_pair_path_equals_reference_float32(name):
    potential = tiny_schnet(torch.float32)
    batch = atoms_to_batch(structures(name), CUTOFF, dtype=torch.float32)
    fast, reference = evaluate(potential, batch, True), evaluate(potential, batch, False)
    force_scale = float(reference[K.FORCES].abs().max())
    assert float((fast[K.FORCES] - reference[K.FORCES]).abs().max()) <= 1e-4 * force_scale
    assert float((fast[K.ENERGIES] - reference[K.ENERGIES]).abs().max()) <= 1e-4 * float(
        reference[K.ENERGIES].abs().max())


def test_exported_model_pair_path_equals_reference():
    """The scripted file's pair path against its own reference path and the eager reference."""
    scripted = script_potential(tiny_schnet(torch.float64), "float64")
    atoms = structures("small_cell")[0]
    batch = atoms_to_batch([atoms], CUTOFF, dtype=torch.float64)
    shift_vectors = batch[K.EDGE_SHIFTS] @ batch[K.CELL].reshape(3, 3)
    args = (batch[K.POSITIONS], batch[K.ATOMIC_NUMBERS], batch[K.EDGE_INDEX], shift_vectors,
            batch[K.CELL].reshape(3, 3), len(atoms), True)
    fast = scripted(*args)
    scripted.potential.representation.use_pairs = False
    reference = scripted(*args)
    eager = evaluate(tiny_schnet(torch.float64), batch, False)
    for key in ("energy", "forces", "virial"):
        assert torch.allclose(fast[key], reference[key], rtol=0, atol=1e-12), key
        assert torch.allclose(fast[key], eager[key].reshape(fast[key].shape), rtol=0, atol=1e-12), key


def drop_one_direction(batch, edge: int):
    """The batch without edge `edge` (its reverse stays): a list that is not symmetric."""
    keep = torch.ones(batch[K.EDGE_INDEX].shape[1], dtype=torch.bool)
    keep[edge] = False
    out = dict(batch)
    out[K.EDGE_INDEX] = batch[K.EDGE_INDEX][:, keep]
    out[K.EDGE_SHIFTS] = batch[K.EDGE_SHIFTS][keep]
    return out


@pytest.mark.parametrize("name", ["molecule", "small_cell"])
def test_non_symmetric_lists_take_the_reference_path(name):
    potential = tiny_schnet(torch.float64)
    batch = atoms_to_batch(structures(name), CUTOFF, dtype=torch.float64)
    i, j = batch[K.EDGE_INDEX]
    half = dict(batch)
    half[K.EDGE_INDEX], half[K.EDGE_SHIFTS] = batch[K.EDGE_INDEX][:, i < j], batch[K.EDGE_SHIFTS][i < j]
    for edges in (drop_one_direction(batch, 0), drop_one_direction(batch, 5), half):
        assert pair_mask(edges) is None
        fast, reference = evaluate(potential, edges, True), evaluate(potential, edges, False)
        assert torch.equal(fast[K.FORCES], reference[K.FORCES])


def test_zero_length_self_edge_is_not_a_pair():
    i = torch.tensor([0, 1, 0])
    j = torch.tensor([1, 0, 0])
    vectors = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert half_of_symmetric_list(i, j, vectors, 2) is None
    assert half_of_symmetric_list(i[:2], j[:2], vectors[:2], 2).tolist() == [True, False]


def test_self_images_split_by_lexicographic_sign():
    i = torch.zeros(4, dtype=torch.long)
    vectors = torch.tensor([[0.0, 3.0, 0.0], [0.0, -3.0, 0.0], [-3.0, 1.0, 0.0], [3.0, -1.0, 0.0]])
    assert half_of_symmetric_list(i, i, vectors, 1).tolist() == [True, False, False, True]


def compiled_mask(i, j, vectors, n_atoms):
    """torch.ops.mlpot.canonical_edges as a mask (None when not symmetric), to compare."""
    index, symmetric = torch.ops.mlpot.canonical_edges(i, j, vectors, n_atoms)
    if not symmetric:
        return None
    mask = torch.zeros(i.shape[0], dtype=torch.bool)
    mask[index] = True
    return mask


def test_compiled_canonical_edges_equal_half_of_symmetric_list():
    """The exported SchNet's compiled twin of half_of_symmetric_list: same edges, same verdict."""
    from mlpot import ops
    if not ops.available():
        pytest.skip(f"fused kernels not available: {ops.error()}")
    cases = []
    for name in ("molecule", "small_cell", "one_atom_cell", "batch"):
        batch = atoms_to_batch(structures(name), CUTOFF, dtype=torch.float64)
        cases += [batch, drop_one_direction(batch, 0)]
        i, j = batch[K.EDGE_INDEX]
        half = dict(batch)
        half[K.EDGE_INDEX], half[K.EDGE_SHIFTS] = batch[K.EDGE_INDEX][:, i < j], batch[K.EDGE_SHIFTS][i < j]
        cases.append(half)
    for batch in cases:
        i, j = batch[K.EDGE_INDEX]
        positions = batch[K.POSITIONS]
        cell = batch[K.CELL].reshape(-1, 3, 3)
        vectors = positions[j] - positions[i] + torch.einsum("ek,ekl->el", batch[K.EDGE_SHIFTS],
                                                             cell[batch[K.BATCH][i]])
        expected = half_of_symmetric_list(i, j, vectors, positions.shape[0])
        for v in (vectors, vectors.float()):
            got = compiled_mask(i, j, v, positions.shape[0])
            assert (got is None) == (expected is None)
            if expected is not None:
                assert torch.equal(got, expected)
    i = torch.tensor([0, 1, 0])
    j = torch.tensor([1, 0, 0])
    vectors = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert compiled_mask(i, j, vectors, 2) is None                         # zero-length self edge
    assert compiled_mask(i[:2], j[:2], vectors[:2], 2).tolist() == [True, False]
    self_images = torch.tensor([[0.0, 3.0, 0.0], [0.0, -3.0, 0.0], [-3.0, 1.0, 0.0], [3.0, -1.0, 0.0]])
    zeros = torch.zeros(4, dtype=torch.long)
    assert compiled_mask(zeros, zeros, self_images, 1).tolist() == [True, False, False, True]
