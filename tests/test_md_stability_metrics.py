"""The observables of benchmarks/md_stability.py (Fu et al.'s collapse criteria)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from ase.build import molecule

SPEC = importlib.util.spec_from_file_location(
    "md_stability", Path(__file__).resolve().parents[1] / "benchmarks" / "md_stability.py")
md_stability = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(md_stability)


def test_bonds_of_ethanol_and_their_deviation():
    atoms = molecule("CH3CH2OH")
    pairs, lengths = md_stability.bonded_pairs(atoms)
    assert len(pairs) == 8                                  # C-C, C-O, O-H and five C-H
    assert 0.9 < lengths.min() and lengths.max() < 1.6
    stretched = atoms.positions.copy()
    o = next(a.index for a in atoms if a.symbol == "O")
    h = next(int(j) for i, j in pairs if i == o or j == o if atoms[int(j)].symbol == "H")
    stretched[h] += 0.6 * (stretched[h] - stretched[o]) / np.linalg.norm(stretched[h] - stretched[o])
    deviation = np.abs(md_stability.bond_lengths(stretched, pairs) - lengths)
    assert deviation.max() == pytest.approx(0.6) and (deviation > md_stability.BOND_TOLERANCE).sum() == 1


def test_rdfs_of_an_ideal_gas_are_one_and_a_shifted_liquid_collapses():
    rng = np.random.default_rng(0)
    box = np.array([12.0, 12.0, 12.0])
    numbers = np.array([8, 1, 1] * 64)
    gas = rng.uniform(0, 1, size=(200, 192, 3)) * box
    rdfs = md_stability.partial_rdfs(gas, numbers, box)
    for key, g in rdfs.items():            # uncorrelated positions: g(r) = 1 beyond the noise
        assert abs(g[200:].mean() - 1.0) < 0.02, key
    assert md_stability.rdf_mae(rdfs, rdfs) == 0.0
    # molecules: H 1 Å from its O; the same molecules with 1.6 Å bonds differ by more than the limit
    o = rng.uniform(0, 1, size=(50, 64, 3)) * box
    def water(bond):
        h1 = o + bond * np.array([1.0, 0, 0])
        h2 = o + bond * np.array([-0.33, 0.94, 0])
        return np.stack([o, h1, h2], axis=2).reshape(50, 192, 3)
    near = md_stability.partial_rdfs(water(0.97), numbers, box)
    far = md_stability.partial_rdfs(water(1.6), numbers, box)
    assert md_stability.rdf_mae(far, near) > md_stability.RDF_LIMIT
    assert np.argmax(near["HO"]) * md_stability.RDF_DR == pytest.approx(0.97, abs=0.011)


def test_distance_histogram_has_unit_area():
    frames = np.random.default_rng(1).normal(size=(10, 9, 3))
    h = md_stability.distance_histogram(frames)
    assert h.sum() * md_stability.H_R_MAX / md_stability.H_R_BINS == pytest.approx(1.0)
    assert md_stability.histogram_mae(h, h) == 0.0
