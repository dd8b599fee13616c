"""Per-atom virial of the model and per-atom stresses of MLPotCalculator (no LAMMPS needed).

With g_e = ∂E/∂r_e for the edge vector r_e = r_j − r_i + S_e·cell of every edge e = (i, j),
atoms i and j each get W_e = −½ r_e ⊗ g_e (unsymmetrised). Checked for SchNet (eager, exported
with the reference kernels and with the written-out derivatives of the fused kernels) and wACSF,
float64, on small periodic cells (one smaller than the cutoff): the symmetric part of Σ_a W_a is
the virial (−∂E/∂ε); the edge gradients reproduce the forces; exported = eager; ASE's
`stresses` ([N, 6], Voigt xx yy zz yz xz xy, eV/Å³, each atom's share over the cell's volume)
sum to `stress` and equal −sym(W_a)/V; a committee averages its members; molecules and files
exported before the per-atom virial existed are refused with a message."""
import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError

from export_helpers import ethanol, export_without_atom_virial
from mlpot import keys as K
from mlpot.deploy.calculator import MLPotCalculator
from mlpot.data.batch import atoms_to_batch
from mlpot.deploy.export import export_model, has_atom_virial, load_model, script_potential
from mlpot.model.config import ModelConfig, build_potential
from mlpot.model.potential import atom_virial_of_edges

CUTOFF = 3.5
SPECIES = [1, 6, 8, 14]


def tiny(representation="schnet", seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(representation=representation, cutoff=CUTOFF, n_atom_basis=16, n_filters=16,
                      n_interactions=2, n_rbf=8)
    potential = build_potential(cfg, SPECIES)
    potential.set_energy_statistics({z: -1.0 - 0.1 * z for z in SPECIES}, scale=5.0)
    return potential.double().eval()


def cells():
    """8-atom SiC (cubic, strained, triclinic) and the 2-atom primitive cell (heights 3.14 Å <
    cutoff: atoms see their own images)."""
    cubic = bulk("Si", "diamond", a=5.43, cubic=True)
    cubic.symbols[[0, 5]] = "C"
    cubic.cell[1, 0] += 0.3
    cubic.rattle(0.08, seed=4)
    primitive = bulk("Si", "diamond", a=5.43)
    primitive.symbols[1] = "C"
    primitive.rattle(0.08, seed=3)
    return {"cubic_8": cubic, "primitive_2": primitive}


def eager(potential, atoms):
    batch = atoms_to_batch(atoms, CUTOFF, dtype=torch.float64)
    out = potential(batch, compute_forces=True, compute_stress=True, compute_atom_virial=True)
    return batch, {k: v.detach() for k, v in out.items()}


def symmetric(w):
    return 0.5 * (w + w.transpose(-1, -2))


@pytest.mark.parametrize("name", ["cubic_8", "primitive_2"])
@pytest.mark.parametrize("representation", ["schnet", "wacsf"])
def test_atom_virial_sums_to_the_virial_and_exports_agree(representation, name):
    potential = tiny(representation)
    atoms = cells()[name]
    batch, out = eager(potential, atoms)
    w = out[K.ATOM_VIRIAL]
    assert w.shape == (len(atoms), 3, 3)
    virial = out[K.VIRIAL][0]
    assert virial.abs().max() > 0.1 and w.abs().max() > 0.1
    assert (symmetric(w.sum(0)) - virial).abs().max() < 1e-12 * max(1.0, float(virial.abs().max()))
    # the edge gradients behind it reproduce the forces: F_i = Σ_{e=(i,·)} g_e − Σ_{e=(·,i)} g_e
    shifts = batch[K.EDGE_SHIFTS] @ batch[K.CELL].reshape(3, 3)
    i, j = batch[K.EDGE_INDEX]
    positions = batch[K.POSITIONS]
    vectors = (positions[j] - positions[i] + shifts).requires_grad_(True)
    split = {k: v for k, v in batch.items()}
    split[K.EDGE_VECTORS] = vectors
    split[K.EDGE_LENGTHS] = torch.linalg.norm(vectors, dim=1)
    energy = potential.atom_energies(potential.representation(split), batch[K.ATOMIC_NUMBERS]).sum()
    (g,) = torch.autograd.grad(energy, vectors)
    forces = torch.zeros_like(positions).index_add(0, i, g).index_add(0, j, -g)
    assert (forces - out[K.FORCES]).abs().max() < 1e-12
    assert (atom_virial_of_edges(vectors.detach(), g, i, j, len(atoms)) - w).abs().max() < 1e-12
    kernels = ["reference", "fused"] if representation == "schnet" else ["reference"]
    from mlpot import ops
    if representation == "schnet" and not ops.available():
        kernels = ["reference"]
    for kernel in kernels:
        module = script_potential(potential, "float64", kernels=kernel)
        got = module(positions, batch[K.ATOMIC_NUMBERS], batch[K.EDGE_INDEX], shifts, batch[K.CELL].reshape(3, 3),
                     len(atoms), True, True)
        assert (got["atom_virial"] - w).abs().max() < 1e-12, kernel
        assert (got["virial"] - virial).abs().max() < 1e-12, kernel
        assert "atom_virial" not in module(positions, batch[K.ATOMIC_NUMBERS], batch[K.EDGE_INDEX], shifts,
                                           batch[K.CELL].reshape(3, 3), len(atoms), True)


@pytest.mark.parametrize("representation", ["schnet", "wacsf"])
def test_calculator_stresses_sum_to_the_stress(representation, tmp_path):
    potential = tiny(representation)
    path = tmp_path / "model.pt"
    export_model(potential, path, dtype="float64")
    calc = MLPotCalculator(path)
    assert "stresses" in calc.implemented_properties
    worst = 0.0
    for atoms in cells().values():
        atoms.calc = calc
        stresses = atoms.get_stresses()
        assert stresses.shape == (len(atoms), 6)
        stress = atoms.get_stress()
        volume = atoms.get_volume()
        # ASE's definition (as its LJ calculator): the per-atom stresses sum to the stress
        assert np.abs(stresses.sum(0) - stress).max() < 1e-12 * max(1.0, np.abs(stress).max())
        _, out = eager(potential, atoms)
        w = symmetric(out[K.ATOM_VIRIAL]).numpy()
        expected = -np.stack([w[:, 0, 0], w[:, 1, 1], w[:, 2, 2], w[:, 1, 2], w[:, 0, 2], w[:, 0, 1]], axis=1) / volume
        worst = max(worst, np.abs(stresses - expected).max() * volume)
        # the stress from `stresses` alone equals the one asked for together with them
        both = MLPotCalculator(path)
        both.calculate(atoms, ["stress", "stresses"])
        assert np.abs(both.results["stresses"] - stresses).max() < 1e-14
        assert np.abs(both.results["stress"] - stress).max() < 1e-14
    print(f"{representation}: max |stresses·V − (−sym W_a)| = {worst:.1e} eV")
    assert worst < 1e-12


def test_committee_stresses_are_the_members_mean(tmp_path):
    files = []
    for seed in (0, 1):
        files.append(tmp_path / f"m{seed}.pt")
        export_model(tiny(seed=seed), files[-1], dtype="float64")
    atoms = cells()["cubic_8"]
    each = []
    for path in files:
        atoms.calc = MLPotCalculator(path)
        each.append(atoms.get_stresses())
    atoms.calc = MLPotCalculator(files)
    assert np.abs(each[0] - each[1]).max() > 1e-4
    assert np.abs(atoms.get_stresses() - 0.5 * (each[0] + each[1])).max() < 1e-14


def test_stresses_refused_for_molecules_and_older_files(tmp_path):
    path = tmp_path / "model.pt"
    export_model(tiny(), path, dtype="float64")
    molecule = ethanol()
    molecule.calc = MLPotCalculator(path)
    with pytest.raises(PropertyNotImplementedError, match="3-D periodic"):
        molecule.get_stresses()
    older = tmp_path / "older.pt"
    export_without_atom_virial(tiny(), older)
    module, _ = load_model(older)
    assert not has_atom_virial(module) and has_atom_virial(load_model(path)[0])
    calc = MLPotCalculator(older)
    assert "stresses" not in calc.implemented_properties
    atoms = cells()["cubic_8"]
    atoms.calc = calc
    assert np.abs(atoms.get_stress()).max() > 0    # everything else still works
    with pytest.raises(PropertyNotImplementedError, match="exported before per-atom virials.*mlpot export"):
        atoms.get_stresses()     # the reason and the remedy, not ASE's "not implemented"
    with pytest.raises(PropertyNotImplementedError, match="exported before per-atom virials"):
        calc.calculate(atoms, ["stresses"])
