"""Dataset downloaders and parsers, all offline: small files written here in the real
formats, a cache filled by hand, and a download that must fail fast."""
import io
import json
import tarfile
import time
import warnings

import numpy as np
import pytest
from ase import Atoms

from conftest import shared_file
from mlpot import units
from mlpot.data import datasets as D
from mlpot.data.raw import DataError
from mlpot.data.store import read_store

# dsgdb9nsd_000001.xyz (methane) as published, one coordinate rewritten in the '*^' form
METHANE = """5
gdb 1\t157.7118\t157.70997\t157.70699\t0.\t13.21\t-0.3877\t0.1171\t0.5048\t35.3641\t0.044749\t-40.47893\t-40.476062\t-40.475117\t-40.498597\t6.469\t
C\t-0.0126981359\t 1.0858041578\t 0.0080009958\t-0.535689
H\t 0.002150416\t-0.0060313176\t 0.0019761204\t 0.133921
H\t 1.0117308433\t 1.4637511618\t 2.765748*^-4\t 0.133922
H\t-0.540815069\t 1.4475266138\t-0.8766437152\t 0.133923
H\t-0.5238136345\t 1.4379326443\t 0.9063972942\t 0.133923
1341.307\t1341.3284\t1341.365\t1562.6731\t1562.7453\t3038.3205\t3151.6034\t3151.6788\t3151.7078
C\tC\t
InChI=1S/CH4/h1H4\tInChI=1S/CH4/h1H4
"""
WATER = """3
gdb 3\t799.58812\t437.90386\t282.94545\t1.8511\t6.31\t-0.2928\t0.0687\t0.3615\t19.0002\t0.021375\t-76.404702\t-76.401867\t-76.400922\t-76.422349\t6.002\t
O\t-0.0343604951\t 0.9775395708\t 0.0076015923\t-0.589706
H\t 0.0647664923\t 0.0205721989\t 0.0015346341\t 0.294853
H\t 0.8717903737\t 1.3007924048\t 0.0006931336\t 0.294853
1693.1355\t3801.6493\t3901.4232
O\tO\t
InChI=1S/H2O/h1H2\tInChI=1S/H2O/h1H2
"""


def _tar(path, members: dict, mode="w:bz2"):
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_parse_qm9_xyz():
    atoms = D.parse_qm9_xyz(METHANE)
    assert atoms.get_chemical_formula() == "CH4"
    assert atoms.positions[2, 2] == pytest.approx(2.765748e-4)
    assert atoms.info["mu"] == 0.0 and atoms.info["gdb_index"] == 1
    assert atoms.info["smiles"] == "C"
    assert atoms.get_potential_energy() == pytest.approx(-40.47893 * units.HARTREE_EV)
    with pytest.raises(DataError, match="not a QM9 xyz record"):
        D.parse_qm9_xyz("5\nnot a gdb line\n")


def test_qm9_parser_matches_shared_qm9_db():
    """The published xyz records of gdb 1 (methane) and gdb 3 (water), parsed, against the
    real QM9 rows of ../shared/data (SchNetPack's db, rows 1 and 3): same elements, positions
    within 1e-8 Å, U0 within 1e-4 eV (the differences found: 1e-5 to 2e-5 eV)."""
    import ase.db
    from mlpot.data.import_schnetpack import decode_data

    db = ase.db.connect(str(shared_file("qm9/qm9_500.db")))
    for text, row_id in ((METHANE, 1), (WATER, 3)):
        row = db.get(row_id)
        parsed = D.parse_qm9_xyz(text)
        assert parsed.info["gdb_index"] == row_id
        np.testing.assert_array_equal(parsed.numbers, row.numbers)
        np.testing.assert_allclose(parsed.positions, row.positions, rtol=0, atol=1e-8)
        u0 = float(decode_data(row.data)["energy_U0"][0])
        assert parsed.get_potential_energy() == pytest.approx(u0, abs=1e-4)


def test_qm9_from_cache_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPOT_CACHE", str(tmp_path / "cache"))
    tar = tmp_path / "cache" / "qm9" / "dsgdb9nsd.xyz.tar.bz2"
    tar.parent.mkdir(parents=True)
    _tar(tar, {"dsgdb9nsd_000001.xyz": METHANE.encode(), "dsgdb9nsd_000003.xyz": WATER.encode()})
    monkeypatch.setattr(D, "_download", lambda *a, **k: pytest.fail("network used"))
    with pytest.warns(UserWarning, match="no published checksum"):
        n = D.prepare("qm9", tmp_path / "qm9.db")
    assert n == 2
    water = read_store(tmp_path / "qm9.db")[1]
    assert water.get_potential_energy() == pytest.approx(-76.404702 * units.HARTREE_EV)
    # second use: checked against the SHA-256 recorded on first use, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert D.fetch("qm9") == tar
    tar.write_bytes(b"damaged")
    with pytest.raises(DataError, match="does not match"):
        D.fetch("qm9")


def test_download_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setitem(D.FILES, "rmd17", D.RemoteFile(
        "rmd17.tar.bz2", "http://127.0.0.1:9/rmd17.tar.bz2", None, "https://example.org"))
    start = time.monotonic()
    with pytest.raises(D.DownloadError) as err:
        D.fetch("rmd17", cache=tmp_path, timeout=2.0)
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert "http://127.0.0.1:9/rmd17.tar.bz2" in message
    assert str(tmp_path / "rmd17" / "rmd17.tar.bz2") in message
    assert not list((tmp_path / "rmd17").glob("*.part"))


def test_default_addresses_are_the_public_ones():
    assert D.FILES["qm9"].url.endswith("/files/3195389")
    assert D.FILES["rmd17"].url.endswith("/files/23950376")
    assert D.FILES["iso17"].url == "http://www.quantum-machine.org/datasets/iso17.tar.gz"
    assert D.FILES["md17_ethanol"].url.endswith("/gdml/data/npz/md17_ethanol.npz")
    assert D.FILES["ani1"].filename == "ANI1_release.tar.gz"


def test_rmd17_archive_layout(tmp_path):
    """The first 10 frames of a real rMD17 npz (../shared/data), every array the published file
    has (old_energies / old_forces too), in a tar at the published member path: the store holds
    the rMD17 labels (not the old MD17 ones) converted from kcal/mol to eV."""
    src = shared_file("rmd17/rmd17_ethanol_test_01.npz")
    raw = np.load(src)
    assert {"nuclear_charges", "coords", "energies", "forces"} <= set(raw.files)
    frames = {k: raw[k] if k == "nuclear_charges" else raw[k][:10] for k in raw.files}
    buf = io.BytesIO()
    np.savez(buf, **frames)
    tar = tmp_path / "rmd17" / "rmd17.tar.bz2"
    tar.parent.mkdir()
    _tar(tar, {"rmd17/npz_data/rmd17_ethanol.npz": buf.getvalue()})
    with pytest.warns(UserWarning):
        report = D.prepare("rmd17", tmp_path / "e.db", molecule="ethanol", cache=tmp_path)
    assert report.n_written == 10
    stored = read_store(tmp_path / "e.db")
    assert len(stored) == 10
    for k, atoms in enumerate(stored):
        assert atoms.get_chemical_formula() == "C2H6O"
        np.testing.assert_array_equal(atoms.numbers, raw["nuclear_charges"])
        np.testing.assert_allclose(atoms.positions, raw["coords"][k], rtol=0, atol=1e-12)
        assert atoms.get_potential_energy() == pytest.approx(raw["energies"][k] * units.KCAL_MOL_EV, rel=1e-12)
        np.testing.assert_allclose(atoms.get_forces(), raw["forces"][k] * units.KCAL_MOL_EV, rtol=1e-12, atol=1e-12)
    assert np.abs(frames["forces"]).max() > 1.0                      # real forces, not zeros
    if "old_energies" in frames:    # the MD17 labels differ: taking them would fail above
        assert np.abs(frames["old_energies"] - frames["energies"]).min() > 1.0


def test_unknown_dataset_is_a_clear_error(tmp_path, monkeypatch):
    """Materials Project (and any name prepare() has no branch for) is refused before any file
    is touched, with the names that do exist."""
    monkeypatch.setattr(D, "_download", lambda *a, **k: pytest.fail("network used"))
    for name in ("materials_project", "mp", "qm7"):
        with pytest.raises(ValueError) as err:
            D.prepare(name, tmp_path / "out.db", cache=tmp_path)
        message = str(err.value)
        assert repr(name) in message
        for known in ("qm9", "md17", "rmd17", "iso17", "ani1", "fetch_materials_project"):
            assert known in message
    assert list(tmp_path.iterdir()) == []


def test_ani1_reads_only_the_first_file(tmp_path, monkeypatch):
    """prepare("ani1") extracts ANI-1_release/ani_gdb_s01.h5 and nothing else (as documented);
    the h5 reader is replaced here, so h5py is not needed."""
    tar = tmp_path / "ani1" / "ANI1_release.tar.gz"
    tar.parent.mkdir()
    _tar(tar, {f"ANI-1_release/ani_gdb_s0{k}.h5": f"file {k}".encode() for k in (1, 2)}, mode="w:gz")
    read = []

    def fake_iter_ani1(path, limit=None):
        read.append(path)
        assert path.read_bytes() == b"file 1"
        atoms = Atoms("CH4", positions=np.random.default_rng(0).normal(size=(5, 3)) * 2)
        from ase.calculators.singlepoint import SinglePointCalculator
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0)
        yield atoms

    monkeypatch.setattr(D, "iter_ani1", fake_iter_ani1)
    with pytest.warns(UserWarning):
        assert D.prepare("ani1", tmp_path / "ani.db", cache=tmp_path) == 1
    assert [p.name for p in read] == ["ani_gdb_s01.h5"]
    assert sorted(p.name for p in tar.parent.glob("*.h5")) == ["ani_gdb_s01.h5"]


def test_iso17_database_layout(tmp_path):
    import ase.db
    fold = tmp_path / "reference.db"
    with ase.db.connect(str(fold)) as db:
        for k in range(3):
            atoms = Atoms("C2H2O", positions=np.random.default_rng(k).normal(size=(5, 3)) * 2)
            db.write(atoms, total_energy=-100.0 - k, data={"atomic_forces": np.full((5, 3), 0.1 * k)})
    tar = tmp_path / "iso17" / "iso17.tar.gz"
    tar.parent.mkdir()
    _tar(tar, {"iso17/reference.db": fold.read_bytes()}, mode="w:gz")
    with pytest.warns(UserWarning):
        report = D.prepare("iso17", tmp_path / "iso.db", cache=tmp_path)
    assert report.n_written == 3 and report.labels == ["energy", "forces"]
    atoms = read_store(tmp_path / "iso.db")[2]
    assert atoms.get_potential_energy() == -102.0
    np.testing.assert_allclose(atoms.get_forces(), 0.2)


def _ani1_layout():
    species = np.array([b"C", b"H", b"H", b"H", b"H"])
    coords = np.random.default_rng(0).normal(size=(2, 5, 3))
    group = {"species": species, "coordinates": coords, "energies": np.array([-40.4, -40.3]),
             "coordinatesHE": coords[:1], "energiesHE": np.array([-40.0]),
             "smiles": np.array([b"C"])}
    return {"gdb11_s01": {"gdb11_s01-0": group}}


def test_ani1_layout_parser():
    structures = list(D.iter_ani1(_ani1_layout()))
    assert len(structures) == 2
    assert structures[0].get_chemical_formula() == "CH4"
    assert structures[1].get_potential_energy() == pytest.approx(-40.3 * units.HARTREE_EV)
    assert len(list(D.iter_ani1(_ani1_layout(), high_energy=True))) == 3
    assert len(list(D.iter_ani1(_ani1_layout(), limit=1))) == 1


def test_ani1_h5_file_or_clear_message(tmp_path, monkeypatch):
    try:
        import h5py
    except ImportError:
        with pytest.raises(ImportError, match="pip install h5py"):
            list(D.iter_ani1(tmp_path / "ani_gdb_s01.h5"))
        return
    with h5py.File(tmp_path / "ani_gdb_s01.h5", "w") as fh:
        for top, groups in _ani1_layout().items():
            for name, group in groups.items():
                for key, value in group.items():
                    fh.create_dataset(f"{top}/{name}/{key}", data=value)
    assert len(list(D.iter_ani1(tmp_path / "ani_gdb_s01.h5"))) == 2


MP_REPLY = {"data": [{
    "material_id": "mp-149", "nsites": 2, "energy_per_atom": -5.42,
    "formation_energy_per_atom": 0.0,
    "structure": {"@module": "pymatgen.core.structure", "@class": "Structure", "charge": 0,
                  "lattice": {"matrix": [[0.0, 2.73436, 2.73436], [2.73436, 0.0, 2.73436],
                                         [2.73436, 2.73436, 0.0]]},
                  "sites": [{"species": [{"element": "Si", "occu": 1}], "abc": [0.25, 0.25, 0.25],
                             "xyz": [1.36718, 1.36718, 1.36718], "label": "Si"},
                            {"species": [{"element": "Si", "occu": 1}], "abc": [0, 0, 0],
                             "xyz": [0.0, 0.0, 0.0], "label": "Si"}]}}],
    "meta": {"total_doc": 1}}


def test_materials_project_json(tmp_path, monkeypatch):
    (si,) = D.parse_mp_json(json.dumps(MP_REPLY))
    assert si.get_chemical_formula() == "Si2" and si.pbc.all()
    assert si.get_potential_energy() == pytest.approx(-10.84)
    assert si.info["material_id"] == "mp-149"
    assert si.get_volume() == pytest.approx(40.8883, rel=1e-4)
    with pytest.raises(DataError, match="Materials Project"):
        D.parse_mp_json({"data": [{"material_id": "mp-1"}]})
    monkeypatch.delenv("MP_API_KEY", raising=False)
    with pytest.raises(D.DownloadError, match="MP_API_KEY"):
        D.fetch_materials_project({"elements": "Si"}, cache=tmp_path)
