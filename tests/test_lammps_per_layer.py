"""The per-layer methods of an exported SchNet model (embed, interaction, readout: what the
LAMMPS plugin's feature exchange calls for a file without the written-out layers) against the
model's forward: energy, per-atom energies, forces and virial from a layer-by-layer evaluation
with an edge-vector virial, directed edges and two-way pairs, n_targets < N. The written-out
layers (interaction_forward / _backward, readout_gradient) are checked in the physics suite,
tests/test_physics.py: per_layer_driver drives them as the plugin does, lammps_exchange runs
them in LAMMPS (two-way pairs, ghost atoms). No LAMMPS needed here."""
import pytest
import torch
from ase.build import bulk, molecule

from mlpot import keys as K
from mlpot.data.batch import atoms_to_batch
from mlpot.deploy.export import script_potential
from mlpot.deploy.metadata import build_metadata
from mlpot.model.config import ModelConfig, build_potential

CUTOFF = 3.0  # Å
WALL = 2.4    # Å: the pair repulsion acts on the Si–Si and O–H bonds of these structures


def tiny(representation="schnet", species=(1, 8, 14)):
    torch.manual_seed(0)
    cfg = ModelConfig(representation=representation, cutoff=CUTOFF, n_atom_basis=16, n_filters=16,
                      n_interactions=2, n_rbf=8)
    potential = build_potential(cfg, list(species))
    potential.set_energy_statistics({z: -1.0 - 0.1 * z for z in species}, scale=5.0)
    potential.repulsion.radius.fill_(WALL)
    return potential.double().eval()


def structures():
    silicon = bulk("Si", "diamond", a=5.43).repeat(2)
    silicon.cell[1, 0] += 0.2
    silicon.rattle(0.05, seed=2)
    water = molecule("H2O")
    water.rattle(0.05, seed=1)
    return {"si_cell": silicon, "water_molecule": water}


def one_way_then_pairs(edges, shifts, n_targets):
    """(edges, shifts, n_two_way) as the plugin passes them: edges into atoms < n_targets only,
    pairs of two such atoms once (i < j) and first, as two-way edges."""
    i, j = edges
    assert bool((i != j).all())   # no periodic self-images in these structures
    into = i < n_targets
    pair = into & (j < n_targets) & (i < j)
    one_way = into & (j >= n_targets)
    order = torch.cat([torch.nonzero(pair).squeeze(1), torch.nonzero(one_way).squeeze(1)])
    return edges[:, order], shifts[order], int(pair.sum())


def per_layer(module, batch, n_interactions, two_way=False):
    """Energy, energies, forces, virial of one structure, layer by layer; the virial is
    −Σ_e r_e ⊗ ∂E/∂r_e over the edge vectors (symmetrised), as the plugin computes it.
    two_way: each pair listed once, with messages both ways."""
    positions = batch[K.POSITIONS].clone().requires_grad_(True)
    edges = batch[K.EDGE_INDEX]
    shifts = batch[K.EDGE_SHIFTS] @ batch[K.CELL].reshape(3, 3)
    n_two_way = 0
    if two_way:
        edges, shifts, n_two_way = one_way_then_pairs(edges, shifts, positions.shape[0])
        assert 2 * n_two_way == batch[K.EDGE_INDEX].shape[1]
    vectors = positions[edges[1]] - positions[edges[0]] + shifts
    vectors.retain_grad()
    numbers = batch[K.ATOMIC_NUMBERS]
    n = numbers.shape[0]
    h = module.embed(numbers)
    for t in range(n_interactions):
        h = module.interaction(t, h, vectors, edges, n, n_two_way)
    leaf = vectors.detach().requires_grad_(True)           # pair_terms' written-out gradient = autograd's
    pair_energies, pair_gradient = module.pair_terms(leaf, edges, numbers, n, n_two_way)
    assert pair_energies.sum() > 0.01                      # the wall acts here
    assert (torch.autograd.grad(pair_energies.sum(), leaf)[0] - pair_gradient).abs().max() < 1e-12
    energies = module.readout(h, numbers) + module.pair_terms(vectors, edges, numbers, n, n_two_way)[0]
    energies.sum().backward()
    g = vectors.grad.T @ vectors.detach()
    return {"energy": energies.sum().detach(), "energies": energies.detach(), "forces": -positions.grad,
            "virial": -0.5 * (g + g.T)}


@pytest.mark.parametrize("two_way", [False, True], ids=["directed", "two_way_pairs"])
@pytest.mark.parametrize("name", ["si_cell", "water_molecule"])
def test_layers_one_at_a_time_equal_forward(name, two_way):
    potential = tiny()
    module = script_potential(potential, "float64")
    atoms = structures()[name]
    batch = atoms_to_batch(atoms, CUTOFF, dtype=torch.float64)
    shifts = batch[K.EDGE_SHIFTS] @ batch[K.CELL].reshape(3, 3)
    whole = module(batch[K.POSITIONS], batch[K.ATOMIC_NUMBERS], batch[K.EDGE_INDEX], shifts,
                   batch[K.CELL].reshape(3, 3), len(atoms), True)
    layered = per_layer(module, batch, potential.n_interactions, two_way)
    assert whole["forces"].abs().max() > 0.05
    assert abs(float(layered["energy"] - whole["energy"][0])) < 1e-10
    assert (layered["energies"] - whole["energies"]).abs().max() < 1e-10
    assert (layered["forces"] - whole["forces"]).abs().max() < 1e-10
    assert (layered["virial"] - whole["virial"]).abs().max() < 1e-9


def test_interaction_updates_only_the_target_atoms():
    """With n_targets < N the first rows equal the full layer's when every edge points into them."""
    module = script_potential(tiny(), "float64")
    batch = atoms_to_batch(structures()["si_cell"], CUTOFF, dtype=torch.float64)
    edges = batch[K.EDGE_INDEX]
    vectors = (batch[K.POSITIONS][edges[1]] - batch[K.POSITIONS][edges[0]]
               + batch[K.EDGE_SHIFTS] @ batch[K.CELL].reshape(3, 3))
    h = module.embed(batch[K.ATOMIC_NUMBERS])
    full = module.interaction(0, h, vectors, edges, h.shape[0])
    into_first = edges[0] < 5
    part = module.interaction(0, h, vectors[into_first], edges[:, into_first], 5)
    assert part.shape == (5, h.shape[1])
    assert (part - full[:5]).abs().max() < 1e-12
    shifts = batch[K.EDGE_SHIFTS] @ batch[K.CELL].reshape(3, 3)
    mixed, mixed_shifts, n_two_way = one_way_then_pairs(edges, shifts, 5)
    assert n_two_way > 0 and mixed.shape[1] > n_two_way
    mixed_vectors = batch[K.POSITIONS][mixed[1]] - batch[K.POSITIONS][mixed[0]] + mixed_shifts
    two_way = module.interaction(0, h, mixed_vectors, mixed, 5, n_two_way)
    assert (two_way - full[:5]).abs().max() < 1e-12
    with pytest.raises(Exception, match="out of range"):
        module.interaction(2, h, vectors, edges, h.shape[0])


def test_metadata_names_the_message_passing_export():
    assert build_metadata(tiny(), "float64")["message_passing"] == "per_layer"
    wacsf = tiny("wacsf", species=(1, 8))
    assert build_metadata(wacsf, "float64")["message_passing"] == "whole_graph"
    assert not hasattr(script_potential(wacsf, "float64"), "interaction")


@pytest.mark.parametrize("kernels", ["fused", "tabulated"])
def test_written_out_layer_out_of_range_is_named(kernels):
    """interaction_forward of a layer the model does not have stops with a message. (That the
    written-out layers give the energy's gradient, with two-way pairs and ghost atoms: the physics
    suite, tests/test_physics.py, engines per_layer_driver and lammps_exchange.)"""
    from mlpot import ops
    from mlpot.deploy.export import scripted_with_kernels

    if not ops.available():
        pytest.skip(f"fused kernels not available: {ops.error()}")
    module = scripted_with_kernels(tiny(), "float64", kernels, 0.0)[0]
    assert hasattr(module, "interaction_backward")
    batch = atoms_to_batch(structures()["si_cell"], CUTOFF, dtype=torch.float64)
    edges = batch[K.EDGE_INDEX]
    vectors = (batch[K.POSITIONS][edges[1]] - batch[K.POSITIONS][edges[0]]
               + batch[K.EDGE_SHIFTS] @ batch[K.CELL].reshape(3, 3))
    h = module.embed(batch[K.ATOMIC_NUMBERS])
    with pytest.raises(Exception, match="out of range"):
        module.interaction_forward(2, h, vectors, edges, h.shape[0], 0)


def test_reference_kernels_have_no_written_out_layers():
    """A --kernels reference export (plain PyTorch) keeps the autograd per-layer methods only."""
    from mlpot.deploy.export import scripted_with_kernels

    module = scripted_with_kernels(tiny(), "float64", "reference", 0.0)[0]
    assert hasattr(module, "interaction") and not hasattr(module, "interaction_backward")
