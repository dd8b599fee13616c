"""The store round trip, AtomsDataset / batches, and splits."""
import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot import keys as K
from mlpot.data.batch import labels_from_atoms
from mlpot.data.dataset import AtomsDataset, batches
from mlpot.data.splits import SplitError, load_split, make_split
from mlpot.data.store import StoreExistsError, read_store, store_metadata, write_store


def _structures():
    water = molecule("H2O")
    water.calc = SinglePointCalculator(water, energy=-14.2, forces=np.arange(9.0).reshape(3, 3),
                                       dipole=np.array([0.0, 0.0, 0.38]))
    water.info["total_charge"] = 0.0
    ion = molecule("NH3")
    ion.calc = SinglePointCalculator(ion, energy=-19.5, forces=np.ones((4, 3)),
                                     dipole=np.array([0.1, 0.0, 0.0]))
    ion.info["total_charge"] = 1.0
    si = bulk("Si", cubic=True)
    si.calc = SinglePointCalculator(si, energy=-43.0, forces=np.zeros((8, 3)),
                                    stress=np.array([0.1, 0.2, 0.3, 0.01, 0.02, 0.03]))
    return [water, ion, si]


def test_store_round_trip(tmp_path):
    path = tmp_path / "s.db"
    assert write_store(path, _structures(), source="unit test",
                       source_units={"energy": "eV"}) == 3
    meta = store_metadata(path)
    assert meta["units"]["energy"] == "eV" and meta["units"]["dipole"] == "e*Å"
    assert meta["source"] == "unit test"
    water, ion, si = read_store(path)
    lw = labels_from_atoms(water)
    assert lw["energy"][0] == -14.2 and lw["dipole"].tolist() == [[0.0, 0.0, 0.38]]
    np.testing.assert_allclose(lw["forces"], np.arange(9.0).reshape(3, 3))
    assert ion.info["total_charge"] == 1.0 and water.info["total_charge"] == 0.0
    ls = labels_from_atoms(si)
    assert ls["stress"].shape == (1, 3, 3) and ls["stress"][0, 0, 1] == pytest.approx(0.03)
    assert si.pbc.all()
    assert [a.get_chemical_formula() for a in read_store(path, [2, 0])] == ["Si8", "H2O"]
    with pytest.raises(StoreExistsError):
        write_store(path, _structures())


def test_dataset_and_batches(tmp_path):
    path = tmp_path / "s.db"
    write_store(path, _structures())
    ds = AtomsDataset(path, cutoff=3.0)
    assert len(ds) == 3
    g = ds[2]
    assert ds[2] is g  # cached
    assert g[K.EDGE_INDEX].shape[0] == 2 and g[K.EDGE_INDEX].shape[1] > 0
    sub = AtomsDataset(path, cutoff=3.0, indices=[1, 0])
    assert sub.atoms(0).get_chemical_formula() == "H3N"
    (batch,) = list(batches(sub, batch_size=4, dtype=torch.float64))
    assert batch[K.ENERGY].tolist() == [-19.5, -14.2]
    assert batch[K.TOTAL_CHARGE].tolist() == [1.0, 0.0]
    assert batch[K.DIPOLE].shape == (2, 3) and batch[K.FORCES].shape == (7, 3)
    assert batch[K.POSITIONS].dtype == torch.float64
    a = [b[K.ENERGY].tolist() for b in batches(ds, 2, shuffle=True, seed=3)]
    b = [b[K.ENERGY].tolist() for b in batches(ds, 2, shuffle=True, seed=3)]
    assert a == b and [len(x) for x in a] == [2, 1]
    assert len(list(batches(ds, 2, drop_last=True))) == 1
    mem = AtomsDataset(_structures(), cutoff=3.0)
    np.testing.assert_array_equal(mem[0][K.EDGE_INDEX], ds[0][K.EDGE_INDEX])
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=__import__(
        "mlpot.data.batch", fromlist=["collate"]).collate)
    assert next(iter(loader))[K.N_ATOMS].tolist() == [3, 4, 8]


def test_splits_reproducible_and_reused(tmp_path):
    a = make_split(100, n_train=80, n_val=10, seed=7)
    b = make_split(100, n_train=80, n_val=10, seed=7)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(a[part], b[part])
    assert len(a["test"]) == 10
    assert len(np.intersect1d(a["train"], a["val"])) == 0
    assert make_split(100, 0.5, 0.25, seed=1)["test"].size == 25
    c = make_split(100, 80, 10, seed=8)
    assert not np.array_equal(a["train"], c["train"])
    path = tmp_path / "run" / "split.npz"
    first = make_split(100, 80, 10, seed=1, path=path)
    again = make_split(100, 50, 5, seed=99, path=path)  # exists: reused as saved
    np.testing.assert_array_equal(first["train"], again["train"])
    assert len(load_split(path, 100)["val"]) == 10
    with pytest.raises(SplitError, match="dataset of 100 structures but this dataset has 90"):
        make_split(90, 80, 10, path=path)
    with pytest.raises(SplitError, match="more than the 100"):
        make_split(100, 95, 10)
    with pytest.raises(SplitError, match="fraction"):
        make_split(100, 1.5)
