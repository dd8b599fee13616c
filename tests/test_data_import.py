"""Importers: real files in ../shared/data (skipped when absent), unit conversion,
malformed files, bad rows, no overwrite, and `mlpot import` end to end."""
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from conftest import shared_file
from mlpot import units
from mlpot.cli import main
from mlpot.data.batch import labels_from_atoms
from mlpot.data.importers import DataError, StoreExistsError, import_data
from mlpot.data.store import read_store, store_metadata, store_size


def test_rmd17_ethanol_kcal_to_ev(tmp_path):
    src = shared_file("rmd17/rmd17_ethanol_train_01.npz")
    raw = np.load(src)
    report = import_data(src, tmp_path / "e.db", limit=20)
    assert report.n_written == 20 and report.labels == ["energy", "forces"]
    atoms = read_store(tmp_path / "e.db", [0])[0]
    labels = labels_from_atoms(atoms)
    expected = raw["energies"][0] * units.KCAL_MOL_EV
    assert labels["energy"][0] == pytest.approx(expected, rel=1e-12)
    assert labels["energy"][0] == pytest.approx(-4209.783867011602, rel=1e-12)  # printed once
    np.testing.assert_allclose(labels["forces"], raw["forces"][0] * units.KCAL_MOL_EV, rtol=1e-12)
    assert labels["forces"][0, 0] == pytest.approx(-0.7652596600354963, rel=1e-12)
    np.testing.assert_allclose(atoms.positions, raw["coords"][0])
    meta = store_metadata(tmp_path / "e.db")
    assert meta["units"]["energy"] == "eV"
    assert meta["source_units"] == {"energy": "kcal/mol", "length": "Å", "forces": "kcal/mol/Å"}


def test_md17_original_keys_and_given_units(tmp_path):
    src = tmp_path / "md17.npz"
    z = np.array([8, 1, 1])
    R = np.random.default_rng(0).normal(size=(4, 3, 3))
    np.savez(src, z=z, R=R, E=np.arange(4.0).reshape(4, 1), F=np.ones((4, 3, 3)))
    import_data(src, tmp_path / "h.db", energy_unit="Hartree", length_unit="Bohr")
    atoms = read_store(tmp_path / "h.db")[2]
    assert atoms.get_potential_energy() == pytest.approx(2 * units.HARTREE_EV)
    np.testing.assert_allclose(atoms.get_forces(), units.HARTREE_EV / units.BOHR_ANG)
    np.testing.assert_allclose(atoms.positions, R[2] * units.BOHR_ANG)
    assert store_metadata(tmp_path / "h.db")["source_unit_origin"]["forces"] == "derived"


def test_zuo_extxyz_force_array(tmp_path):
    src = shared_file("zuo2020/Si_test.xyz")
    report = import_data(src, tmp_path / "si.db")
    assert report.n_written == 25 and report.labels == ["energy", "forces"]
    atoms = read_store(tmp_path / "si.db", [0])[0]
    assert atoms.pbc.all() and len(atoms) == 63
    assert atoms.get_potential_energy() == pytest.approx(-297.62773938)
    np.testing.assert_allclose(atoms.get_forces()[0], [-0.05394626, 0.05113266, 0.18121306])


def test_water_pbc_extxyz_subset(tmp_path):
    src = shared_file("water_pbc/water_192.extxyz")
    report = import_data(src, tmp_path / "w.db", limit=5)
    assert report.n_written == 5
    atoms = read_store(tmp_path / "w.db", [0])[0]
    assert len(atoms) == 192 and atoms.cell[0, 0] == pytest.approx(12.444661140441895)
    assert atoms.get_potential_energy() == pytest.approx(-29943.90625)
    assert atoms.get_forces()[0] == pytest.approx([0.62199688, 0.18400981, -0.04290577])


def test_qm9_old_schnetpack_base64(tmp_path):
    src = shared_file("qm9/qm9_500.db")
    report = import_data(src, tmp_path / "q.db")
    assert report.format == "schnetpack-old" and report.n_written == 500
    assert report.labels == ["energy"]
    methane = read_store(tmp_path / "q.db", [0])[0]
    assert methane.get_chemical_formula() == "CH4"
    # QM9 U0 of methane is -40.47893 Hartree (dsgdb9nsd_000001.xyz)
    assert methane.get_potential_energy() == pytest.approx(-40.47893 * units.HARTREE_EV, abs=1e-4)


def test_carbene_schnetpack2_dipole(tmp_path):
    src = shared_file("carbene_dipole/ase_carbene_2200.db")
    report = import_data(src, tmp_path / "c.db", limit=30)
    assert report.format == "schnetpack2"
    assert report.labels == ["energy", "forces", "dipole"]
    assert report.unit_origin["dipole"] == "file"
    atoms = read_store(tmp_path / "c.db", [0])[0]
    labels = labels_from_atoms(atoms)
    assert labels["dipole"].shape == (1, 3)
    assert labels["energy"][0] == pytest.approx(-10.631597, rel=1e-6)
    assert labels["dipole"][0, 1] == pytest.approx(0.35666496, rel=1e-6)
    assert atoms.info["total_charge"] == 0.0
    # units given by hand override the file's: Debye -> e·Å
    import_data(src, tmp_path / "d.db", limit=2, dipole_unit="Debye")
    d = read_store(tmp_path / "d.db", [0])[0].calc.results["dipole"]
    assert d[1] == pytest.approx(0.35666496 * units.DEBYE_EANG, rel=1e-6)


def _xyz_with_nan(path):
    frames = []
    for k in range(4):
        a = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
        f = np.full((2, 3), 0.1)
        e = -1.0 - k
        if k == 1:
            f[0, 0] = np.nan
        if k == 3:
            e = np.inf
        a.calc = SinglePointCalculator(a, energy=e, forces=f)
        frames.append(a)
    import ase.io
    ase.io.write(path, frames, format="extxyz")


def test_bad_rows_skipped_or_refused(tmp_path):
    src = tmp_path / "bad.xyz"
    _xyz_with_nan(src)
    report = import_data(src, tmp_path / "ok.db")
    assert report.n_read == 4 and report.n_written == 2
    assert [i for i, _ in report.bad] == [1, 3]
    assert report.bad[0][1] == "forces has NaN or inf values" and "skipped 2" in report.summary()
    assert store_metadata(tmp_path / "ok.db")["skipped_rows"] == [1, 3]
    with pytest.raises(DataError, match=r"2 of 4 rows.*#1: forces has NaN or inf values; #3: energy has NaN"):
        import_data(src, tmp_path / "no.db", on_bad="refuse")
    assert not (tmp_path / "no.db").exists()


def test_missing_required_label(tmp_path):
    import ase.io
    frames = []
    for k in range(3):
        a = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7 + 0.01 * k]])
        a.calc = SinglePointCalculator(a, energy=-1.0, **({} if k == 2 else {"forces": np.zeros((2, 3))}))
        frames.append(a)
    ase.io.write(tmp_path / "m.xyz", frames, format="extxyz")
    report = import_data(tmp_path / "m.xyz", tmp_path / "m.db")
    assert report.bad == [(2, "missing required label(s): forces")]
    report = import_data(tmp_path / "m.xyz", tmp_path / "m2.db", require=["energy"])
    assert report.n_written == 3 and report.labels == ["energy"]


def test_no_overwrite_without_force(tmp_path):
    src = tmp_path / "a.npz"
    np.savez(src, z=[1, 1], R=np.zeros((2, 2, 3)) + [[0, 0, 0], [0, 0, 0.7]], E=[1.0, 2.0],
             F=np.zeros((2, 2, 3)))
    out = tmp_path / "s.db"
    import_data(src, out)
    with pytest.raises(StoreExistsError, match="--force"):
        import_data(src, out, energy_unit="Hartree")
    assert read_store(out)[0].get_potential_energy() == pytest.approx(1.0 * units.KCAL_MOL_EV)
    import_data(src, out, energy_unit="eV", force=True)
    assert read_store(out)[0].get_potential_energy() == pytest.approx(1.0)


@pytest.mark.parametrize("keys, pattern", [
    ({"x": np.zeros(3)}, "not MD17/rMD17 keys"),
    ({"z": [1, 1], "R": np.zeros((2, 3, 3)), "E": [1.0, 2.0]}, r"R has shape \(2, 3, 3\)"),
    ({"z": [1, 1], "R": np.zeros((2, 2, 3)), "E": [1.0, 2.0, 3.0]}, "one energy per frame"),
    ({"z": [1, 1], "R": np.zeros((2, 2, 3)), "E": [1.0, 2.0], "F": np.zeros((2, 3, 3))},
     "same shape as the coordinates"),
])
def test_malformed_npz(tmp_path, keys, pattern):
    np.savez(tmp_path / "bad.npz", **keys)
    with pytest.raises(DataError, match=pattern):
        import_data(tmp_path / "bad.npz", tmp_path / "o.db")


def test_unreadable_and_unknown_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="cannot read as .npz"):
        import_data(tmp_path / "junk.npz", tmp_path / "o.db")
    (tmp_path / "junk.db").write_bytes(b"garbage" * 10)
    with pytest.raises(DataError, match="ASE SQLite"):
        import_data(tmp_path / "junk.db", tmp_path / "o.db")
    (tmp_path / "junk.xyz").write_text("3\nnot extxyz\nH 0 0\n")
    with pytest.raises(DataError, match="cannot read as extxyz"):
        import_data(tmp_path / "junk.xyz", tmp_path / "o.db")
    with pytest.raises(FileNotFoundError):
        import_data(tmp_path / "missing.xyz", tmp_path / "o.db")
    with pytest.raises(DataError, match="unknown energy unit 'furlong'"):
        import_data(tmp_path / "junk.npz", tmp_path / "o.db", energy_unit="furlong",
                    format="ase")


def test_cli_import_end_to_end(tmp_path, capsys):
    src = tmp_path / "bad.xyz"
    _xyz_with_nan(src)
    out = tmp_path / "cli.db"
    assert main(["import", str(src), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "imported 2 of 4" in text and "#1" in text and "#3" in text
    assert store_size(out) == 2
    assert main(["import", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err and err.count("\n") == 1
    assert main(["import", str(src), "-o", str(out), "--force", "--on-bad", "refuse"]) == 2
    assert "refuse" in capsys.readouterr().err
    assert main(["import", str(src), "-o", str(out), "--force", "--energy-unit", "kcal/mol"]) == 0
    e = read_store(out)[0].get_potential_energy()
    assert e == pytest.approx(-1.0 * units.KCAL_MOL_EV)
    assert store_metadata(out)["source_units"]["forces"] == "kcal/mol/Å"
