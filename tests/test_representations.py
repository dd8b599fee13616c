"""Symmetry functions against a direct loop over neighbours, triplets, standardisation."""
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from mlpot import keys as K
from mlpot.data import atoms_to_batch, atoms_to_graph
from mlpot.model.representations import ACSF, WACSF
from mlpot.model.representations.triplets import edge_pairs
from mlpot.model.representations.wacsf import MAX_GAIN, RANGE_MARGIN, edge_vectors_of, soft_bounds

CUTOFF = 3.0


def fc(d):
    return 0.5 * (np.cos(np.pi * d / CUTOFF) + 1.0) * (d < CUTOFF)


def brute_force(atoms, rep, weight, radial_channel, pair_channel):
    """G2 and G4 of docs in mlpot.model.representations.wacsf by explicit loops (numpy)."""
    g = atoms_to_graph(atoms, CUTOFF, labels=False)
    i, j = g[K.EDGE_INDEX]
    v = atoms.positions[j] - atoms.positions[i] + g[K.EDGE_SHIFTS] @ atoms.cell.array
    mu = rep.radial_centers.double().numpy()
    eta_r = rep.radial_eta
    eta_a = rep.angular_eta.double().numpy()
    n, nr, na = len(atoms), rep.n_radial, rep.n_angular
    radial = np.zeros((n, rep.n_channels, nr))
    angular = np.zeros((n, rep.n_pair_channels, rep.n_theta, na))
    Z = atoms.numbers
    for e in range(len(i)):
        d = np.linalg.norm(v[e])
        radial[i[e], radial_channel(Z[j[e]])] += weight(Z[j[e]]) * np.exp(-eta_r * (d - mu) ** 2) * fc(d)
        for f in range(len(i)):
            if f == e or i[f] != i[e]:
                continue
            d1, d2 = d, np.linalg.norm(v[f])
            d12 = np.linalg.norm(v[f] - v[e])
            cos = v[e] @ v[f] / (d1 * d2)
            t = 0
            for zeta in rep.zeta.double().numpy()[::2]:
                for lam in (1.0, -1.0):
                    angular[i[e], pair_channel(Z[j[e]], Z[j[f]]), t] += (
                        2 ** (1 - zeta) * max(1 + lam * cos, 0.0) ** zeta * np.exp(-eta_a * (d1**2 + d2**2 + d12**2))
                        * fc(d1) * fc(d2) * fc(d12) * weight(Z[j[e]]) * weight(Z[j[f]]))
                    t += 1
    return np.concatenate([radial.reshape(n, -1), angular.reshape(n, -1)], axis=1)


def raw(rep, atoms):
    b = atoms_to_batch(atoms, CUTOFF, torch.float64, labels=False)
    v = edge_vectors_of(b)
    return rep.descriptors(b[K.ATOMIC_NUMBERS], b[K.EDGE_INDEX], v, v.norm(dim=1)).numpy()


def periodic():
    atoms = Atoms([6, 8, 1], scaled_positions=[[0, 0, 0], [0.4, 0.5, 0.1], [0.2, 0.1, 0.6]],
                  cell=[[2.6, 0, 0], [0.5, 2.7, 0], [0.3, 0.4, 2.8]], pbc=True)
    return atoms


@pytest.mark.parametrize("make", [lambda: molecule("CH3OH"), periodic], ids=["molecule", "small_cell"])
def test_wacsf_matches_loops(make):
    atoms = make()
    rep = WACSF(n_radial=5, n_angular=3, zetas=[1, 4], cutoff=CUTOFF).double()
    expected = brute_force(atoms, rep, float, lambda z: 0, lambda a, b: 0)
    assert expected.shape[1] == rep.n_features == 5 + 3 * 4
    np.testing.assert_allclose(raw(rep, atoms), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: molecule("CH3OH"), periodic], ids=["molecule", "small_cell"])
def test_acsf_matches_loops(make):
    species = [1, 6, 8]
    atoms = make()
    rep = ACSF(species, n_radial=4, n_angular=2, zetas=[2], cutoff=CUTOFF).double()
    pairs = {(a, b): k for k, (a, b) in enumerate((a, b) for a in range(3) for b in range(a, 3))}
    expected = brute_force(atoms, rep, lambda z: 1.0, species.index,
                           lambda a, b: pairs[tuple(sorted((species.index(a), species.index(b))))])
    assert rep.n_features == 3 * 4 + 6 * 2 * 2
    np.testing.assert_allclose(raw(rep, atoms), expected, rtol=1e-10, atol=1e-12)


def test_edge_pairs_any_edge_order():
    rng = np.random.default_rng(0)
    idx_i = torch.tensor(rng.integers(0, 5, size=40))
    e1, e2 = edge_pairs(idx_i, 6)
    found = sorted(tuple(sorted(p)) for p in zip(e1.tolist(), e2.tolist()))
    expected = sorted((a, b) for a in range(40) for b in range(a + 1, 40) if idx_i[a] == idx_i[b])
    assert found == expected
    e1, e2 = edge_pairs(torch.zeros(0, dtype=torch.long), 3)
    assert e1.numel() == 0 and e2.numel() == 0


def test_standardisation_fitted_per_element_and_stored():
    """Mean and std of every function over the atoms of each element; after it, every
    element's varying inputs have mean 0 and std 1."""
    structures = [molecule("CH3OH"), molecule("H2O"), periodic()]
    graphs = [atoms_to_graph(a, CUTOFF, labels=False) for a in structures]
    rep = ACSF([1, 6, 8], n_radial=4, n_angular=2, cutoff=CUTOFF).double()
    before = raw(rep, structures[0])
    info = rep.fit_standardization(graphs)
    values = np.concatenate([raw(rep, a) for a in structures])
    numbers = np.concatenate([a.numbers for a in structures])
    b = atoms_to_batch(structures, CUTOFF, torch.float64, labels=False)
    v = edge_vectors_of(b)
    b[K.EDGE_VECTORS], b[K.EDGE_LENGTHS] = v, v.norm(dim=1)
    standardised = rep(b).numpy()
    constant = 0
    for row, z in enumerate([1, 6, 8]):
        mine = values[numbers == z]
        np.testing.assert_allclose(rep.sf_mean.numpy()[row], mine.mean(0), atol=1e-12)
        varying = mine.std(0) > 1e-8
        constant += int((~varying).sum())
        scale = np.maximum(mine.std(0), values.std(0) / MAX_GAIN)
        np.testing.assert_allclose(rep.sf_std.numpy()[row][varying], scale[varying], rtol=1e-8)
        varying &= mine.std(0) > values.std(0) / MAX_GAIN      # (else the floor: std below 1)
        np.testing.assert_allclose(standardised[numbers == z].mean(0)[varying], 0.0, atol=1e-10)
        np.testing.assert_allclose(standardised[numbers == z].std(0)[varying], 1.0, rtol=1e-8)
    assert info["constant_descriptors"] == constant and info["n_atoms"] == len(numbers)
    assert "sf_mean" in rep.state_dict() and np.abs(before).max() > 0


def test_standardisation_of_older_files_loads_for_every_element():
    """A state dict from before the per-element statistics ([F] mean and std) loads as the
    same statistics for every element."""
    rep = WACSF(n_radial=4, n_angular=2, cutoff=CUTOFF, species=[1, 8]).double()
    old = {k: v for k, v in rep.state_dict().items() if k not in ("centre_row", "sf_lo", "sf_hi")}
    old["sf_mean"] = torch.arange(rep.n_features, dtype=torch.float64)
    old["sf_std"] = torch.full((rep.n_features,), 2.0, dtype=torch.float64)
    rep.fit_standardization([atoms_to_graph(molecule("H2O"), CUTOFF, labels=False)])   # bounds of its own
    rep.load_state_dict(old)
    assert rep.sf_mean.shape == (2, rep.n_features)
    assert torch.equal(rep.sf_mean[1], old["sf_mean"]) and torch.equal(rep.sf_std[0], old["sf_std"])
    assert bool((rep.sf_lo == -np.inf).all()) and bool((rep.sf_hi == np.inf).all())   # no bounds then


def standardised(rep, atoms):
    b = atoms_to_batch(atoms, CUTOFF, torch.float64, labels=False)
    v = edge_vectors_of(b)
    b[K.EDGE_VECTORS], b[K.EDGE_LENGTHS] = v, v.norm(dim=1)
    return rep(b).numpy()


def test_descriptors_bounded_beyond_the_training_range():
    """Inside the training atoms' range the standardised descriptors are as they were; a
    structure with far shorter contacts (ethanol squeezed to 80 %) gets inputs at most
    RANGE_MARGIN beyond it, per element and function."""
    structures = []
    for seed in range(5):
        atoms = molecule("CH3CH2OH")
        atoms.rattle(0.05, seed=seed)
        structures.append(atoms)
    rep = WACSF(n_radial=6, n_angular=2, cutoff=CUTOFF, species=[1, 6, 8]).double()
    rep.fit_standardization([atoms_to_graph(a, CUTOFF, labels=False) for a in structures])
    rows = [1, 6, 8]
    for atoms in structures:
        plain = (raw(rep, atoms) - rep.sf_mean.numpy()[[rows.index(z) for z in atoms.numbers]]) \
            / rep.sf_std.numpy()[[rows.index(z) for z in atoms.numbers]]
        np.testing.assert_allclose(standardised(rep, atoms), plain, atol=1e-12)
    squeezed = structures[0].copy()
    squeezed.positions *= 0.8
    got = standardised(rep, squeezed)
    row = [rows.index(z) for z in squeezed.numbers]
    lo, hi = rep.sf_lo.numpy()[row], rep.sf_hi.numpy()[row]
    assert np.isfinite(lo).all() and np.isfinite(hi).all()
    assert (got <= hi + RANGE_MARGIN + 1e-12).all() and (got >= lo - RANGE_MARGIN - 1e-12).all()
    unbounded = (raw(rep, squeezed) - rep.sf_mean.numpy()[row]) / rep.sf_std.numpy()[row]
    assert (unbounded > hi + 2 * RANGE_MARGIN).any()   # the squeeze did leave the range


def test_soft_bounds_smooth_and_exact_inside():
    x = torch.linspace(-4, 4, 81, dtype=torch.float64, requires_grad=True)
    lo, hi = torch.tensor(-1.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64)
    y = soft_bounds(x, lo, hi, 0.5)
    inside = (x >= lo) & (x <= hi)
    assert torch.equal(y[inside], x[inside])
    assert float(y.max()) < 2.5 and float(y.min()) > -1.5
    assert torch.autograd.gradcheck(lambda t: soft_bounds(t, lo, hi, 0.5), (x,))
    assert torch.autograd.gradgradcheck(lambda t: soft_bounds(t, lo, hi, 0.5), (x,))
    free = soft_bounds(x, torch.tensor(-np.inf), torch.tensor(np.inf), 0.5)
    assert torch.equal(free, x)
    assert torch.equal(torch.autograd.grad(free.sum(), x)[0], torch.ones_like(x))


def test_acsf_unknown_element_and_bad_settings():
    rep = ACSF([1, 8], n_radial=3, n_angular=1, cutoff=CUTOFF)
    b = atoms_to_batch(molecule("CH4"), CUTOFF, labels=False)
    v = edge_vectors_of(b)
    with pytest.raises(ValueError, match="Z=6 is not among the model's species"):
        rep.descriptors(b[K.ATOMIC_NUMBERS], b[K.EDGE_INDEX], v, v.norm(dim=1))
    with pytest.raises(ValueError, match="species"):
        ACSF([], cutoff=CUTOFF)
    with pytest.raises(ValueError, match="zetas"):
        WACSF(zetas=[0.5])
    with pytest.raises(ValueError, match="n_radial"):
        WACSF(n_radial=1)


def test_edges_beyond_cutoff_are_ignored():
    """Engines may pass a neighbour list with a skin: the descriptors must not change."""
    atoms = molecule("CH3OH")
    rep = WACSF(n_radial=4, n_angular=2, cutoff=CUTOFF).double()
    b = atoms_to_batch(atoms, CUTOFF + 1.5, torch.float64, labels=False)
    v = edge_vectors_of(b)
    with_skin = rep.descriptors(b[K.ATOMIC_NUMBERS], b[K.EDGE_INDEX], v, v.norm(dim=1)).numpy()
    np.testing.assert_allclose(with_skin, raw(rep, atoms), rtol=1e-12, atol=1e-14)
