"""What users feed `mlpot train`, `mlpot import` and eval's data reading: a failed `--force` start
keeps the old run, splits that do not fit the data, bad geometry, property keys, virials, units
given twice, empty / foreign files and bad limits each give one line and lose nothing."""
import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot import units
from mlpot.cli import main
from mlpot.data.importers import import_data
from mlpot.data.raw import DataError
from mlpot.data.store import read_store, write_store
from test_train_fixtures import emt_clusters, write_config, write_emt_data

RUN_FILES = ("best.ckpt", "last.ckpt", "metrics.csv", "config.yaml", "split.npz")


def _config(folder, data, training=None, **kwargs):
    """write_config with the reference kernels (no compiling of the C++ operators)."""
    return write_config(folder, data, training={"kernels": "reference", **(training or {})}, **kwargs)


def _one_line_error(capsys, code: int, *words) -> str:
    """The stderr of a command that failed with exit code `code`: one line holding `words`."""
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    return err


def _snapshot(folder) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trust_data")
    return {"emt": write_emt_data(folder / "emt.xyz", n=20), "five": write_emt_data(folder / "five.xyz", n=5),
            "folder": folder}


def test_failed_force_start_keeps_the_old_run(tmp_path, data, capsys):
    config = _config(tmp_path, data["emt"], training={"max_epochs": 2}, n_train=12, n_val=4)
    assert main(["train", str(config), "--quiet"]) == 0
    run = tmp_path / "run"
    before = _snapshot(run)
    assert {Path(name) for name in RUN_FILES} <= set(before)
    capsys.readouterr()
    for bad in ([f"data.train={tmp_path / 'missing.xyz'}"], ["data.n_val=0"],
                [f"training.init_from={tmp_path / 'missing.ckpt'}"]):
        code = main(["train", str(config), "--quiet", "--force"] + [a for b in bad for a in ("--set", b)])
        _one_line_error(capsys, code, "mlpot train: error:")
        assert _snapshot(run) == before, bad
    # a good start replaces the run
    assert main(["train", str(config), "--quiet", "--force", "--set", "training.max_epochs=1"]) == 0
    assert len((run / "metrics.csv").read_text().splitlines()) == 2


def test_failed_force_start_keeps_an_old_committee(tmp_path, data, capsys):
    config = _config(tmp_path, data["emt"], training={"max_epochs": 1, "ensemble": 2}, n_train=12, n_val=4)
    assert main(["train", str(config), "--quiet"]) == 0
    before = _snapshot(tmp_path / "run")
    assert json.loads(before[next(p for p in before if p.name == "ensemble.json")])["finished"] == [0, 1]
    capsys.readouterr()
    code = main(["train", str(config), "--quiet", "--force", "--set", f"data.train={tmp_path / 'missing.xyz'}"])
    _one_line_error(capsys, code, "missing.xyz")
    assert _snapshot(tmp_path / "run") == before


def test_empty_training_or_validation_set_says_what_to_set(tmp_path, data, capsys):
    config = _config(tmp_path, data["five"], output="run5")
    code = main(["train", str(config), "--quiet", "--set", "data.n_train=0.9", "--set", "data.n_val=0.1"])
    _one_line_error(capsys, code, "validation set is empty", "5 structures", "data.n_val", "data.val")
    code = main(["train", str(config), "--quiet", "--set", "data.n_train=0", "--set", "data.n_val=2"])
    _one_line_error(capsys, code, "training set is empty", "data.n_train")
    # n_train 1.0 is all of the data: nothing is left for validation ...
    code = main(["train", str(config), "--quiet", "--set", "data.n_train=1.0", "--set", "data.n_val=2"])
    _one_line_error(capsys, code, "n_train=1.0 (5)", "data.val")
    assert not (tmp_path / "run5").exists()
    # ... which is right with a validation file
    code = main(["train", str(config), "--quiet", "--set", "data.n_train=1.0", "--set", f"data.val={data['emt']}",
                 "--set", "training.max_epochs=1"])
    assert code == 0
    assert len(np.load(tmp_path / "run5" / "split.npz")["train"]) == 5


def test_split_made_for_other_data(tmp_path, data, capsys):
    from mlpot.data.splits import random_split, save_split

    config = _config(tmp_path, data["emt"], training={"max_epochs": 1}, n_train=12, n_val=4)
    # a run resumed on other data
    assert main(["train", str(config), "--quiet"]) == 0
    code = main(["train", str(config), "--quiet", "--resume", "--set", f"data.train={data['five']}",
                 "--set", "training.max_epochs=2"])
    _one_line_error(capsys, code, "20 structures", "has 5", "--force")
    # data.split made for other data
    np.savez(tmp_path / "bare.npz", train=np.arange(25), val=np.arange(25, 30), test=np.arange(0))
    config = _config(tmp_path, data["emt"], training={"max_epochs": 1}, n_train=12, n_val=4, output="new")
    code = main(["train", str(config), "--quiet", "--set", f"data.split={tmp_path / 'bare.npz'}"])
    err = _one_line_error(capsys, code, "29", "data.split")
    assert "None" not in err
    save_split(random_split(30, 20, 5), tmp_path / "other.npz")
    code = main(["train", str(config), "--quiet", "--set", f"data.split={tmp_path / 'other.npz'}"])
    _one_line_error(capsys, code, "30 structures", "has 20", "data.split")
    code = main(["train", str(config), "--quiet", "--set", f"data.split={tmp_path / 'none.npz'}"])
    _one_line_error(capsys, code, "none.npz not found", "data.split")
    assert not (tmp_path / "new").exists()


def _cu_pair(cell=None, shift=1.8, energy=-1.0):
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [shift, 1.8, 0]], cell=np.eye(3) * 3.6 if cell is None else cell,
                  pbc=True)
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.zeros((2, 3)))
    return atoms


def test_degenerate_cell_and_overlapping_atoms_are_named(tmp_path, capsys):
    import ase.io

    frames = [_cu_pair(), _cu_pair(cell=[[3.6, 0, 0], [7.2, 0, 0], [0, 0, 3.6]]), _cu_pair(), _cu_pair()]
    frames[2].positions[1] = [0.05, 0.0, 0.0]
    ase.io.write(tmp_path / "geo.xyz", frames, format="extxyz")
    report = import_data(tmp_path / "geo.xyz", tmp_path / "geo.db")
    assert report.n_written == 2 and [i for i, _ in report.bad] == [1, 2]
    assert "linearly dependent" in report.bad[0][1] and "7.2" in report.bad[0][1]
    assert "atoms 0 and 1" in report.bad[1][1] and "0.05" in report.bad[1][1]
    with pytest.raises(DataError, match=r"#1: .*cell.*#2: .*atoms 0 and 1"):
        import_data(tmp_path / "geo.xyz", tmp_path / "no.db", on_bad="refuse")
    assert not (tmp_path / "no.db").exists()
    # a store that holds such structures (written without the importer's checks): one line, rows named
    structures = emt_clusters(20)
    structures[3].positions[1] = structures[3].positions[0]
    structures[7].pbc, structures[7].cell = True, [[5, 0, 0], [10, 0, 0], [0, 0, 5]]
    write_store(tmp_path / "bad.db", structures)
    config = _config(tmp_path, tmp_path / "bad.db", training={"max_epochs": 1}, n_train=12, n_val=4)
    _one_line_error(capsys, main(["train", str(config), "--quiet"]), "#3", "atoms 0 and 1", "#7", "linearly dependent")


def test_named_keys_win_and_missing_keys_are_listed(tmp_path):
    import ase.db
    import ase.io

    db = ase.db.connect(str(tmp_path / "plain.db"), append=False)
    frames = []
    for k in range(3):
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74 + 0.01 * k]])
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((2, 3)))
        db.write(atoms, key_value_pairs={"energy_dft": -5.0 - k}, data={"forces_dft": np.full((2, 3), 0.5)})
        atoms.info["energy_dft"] = -5.0 - k
        frames.append(atoms)
    import_data(tmp_path / "plain.db", tmp_path / "a.db", energy_key="energy_dft", forces_key="forces_dft")
    stored = read_store(tmp_path / "a.db")
    assert [a.get_potential_energy() for a in stored] == [-5.0, -6.0, -7.0]
    assert np.all(stored[0].get_forces() == 0.5)
    with pytest.raises(DataError, match=r"--energy-key 'U0' is not in the file; it has: energy, energy_dft, "
                                        r"forces, forces_dft"):
        import_data(tmp_path / "plain.db", tmp_path / "b.db", energy_key="U0")
    # extxyz and MD17 npz too
    ase.io.write(tmp_path / "h2.xyz", frames, format="extxyz")
    import_data(tmp_path / "h2.xyz", tmp_path / "c.db", energy_key="energy_dft")
    assert read_store(tmp_path / "c.db")[2].get_potential_energy() == -7.0
    with pytest.raises(DataError, match="--forces-key 'F'.*energy_dft"):
        import_data(tmp_path / "h2.xyz", tmp_path / "d.db", forces_key="F")
    np.savez(tmp_path / "h2.npz", z=[1, 1], R=np.array([[[0, 0, 0], [0, 0, 0.74]]] * 2), E=[1.0, 2.0],
             E_ccsd=[3.0, 4.0], F=np.zeros((2, 2, 3)))
    import_data(tmp_path / "h2.npz", tmp_path / "e.db", energy_key="E_ccsd", energy_unit="eV")
    assert read_store(tmp_path / "e.db")[1].get_potential_energy() == 4.0
    with pytest.raises(DataError, match="--energy-key 'E_cc'.*E_ccsd"):
        import_data(tmp_path / "h2.npz", tmp_path / "f.db", energy_key="E_cc")
    assert main(["import", str(tmp_path / "plain.db"), "-o", str(tmp_path / "g.db"), "--forces-key", "x"]) == 2


def test_extxyz_virial_becomes_the_stress(tmp_path):
    import ase.io
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", "fcc", a=3.5, cubic=True)        # compressed: positive pressure, negative stress
    atoms.set_cell(atoms.cell * [1.0, 1.02, 0.98], scale_atoms=True)
    atoms.calc = EMT()
    stress, volume = atoms.get_stress(voigt=False), atoms.get_volume()
    frame = atoms.copy()
    frame.calc = SinglePointCalculator(frame, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
    frame.info["virial"] = -stress * volume            # the extxyz convention (GAP, QUIP): in eV
    ase.io.write(tmp_path / "v.xyz", [frame], format="extxyz")
    report = import_data(tmp_path / "v.xyz", tmp_path / "v.db")
    assert report.labels == ["energy", "forces", "stress"]
    np.testing.assert_allclose(read_store(tmp_path / "v.db")[0].get_stress(), atoms.get_stress(), atol=1e-10)
    assert atoms.get_stress()[0] < 0


def test_unit_given_twice(tmp_path):
    import ase.db

    write_store(tmp_path / "store.db", emt_clusters(3))
    with pytest.raises(DataError, match="mlpot store.*--energy-unit kcal/mol.*eV"):
        import_data(tmp_path / "store.db", tmp_path / "o.db", energy_unit="kcal/mol")
    from mlpot.train.data import read_structures

    with pytest.raises(DataError, match="mlpot store"):
        read_structures(tmp_path / "store.db", energy_unit="kcal/mol")
    # a SchNetPack 2 database records its units: the unit given wins, and the report says so
    db = ase.db.connect(str(tmp_path / "spk.db"), append=False)
    db.metadata = {"_property_unit_dict": {"energy": "eV", "forces": "eV/Ang"}, "_distance_unit": "Ang"}
    db.write(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]),
             data={"energy": np.array([-1.0]), "forces": np.zeros((2, 3))})
    report = import_data(tmp_path / "spk.db", tmp_path / "s.db", energy_unit="kcal/mol")
    assert "--energy-unit kcal/mol overrides the file's eV" in report.summary()
    assert read_store(tmp_path / "s.db")[0].get_potential_energy() == pytest.approx(-units.KCAL_MOL_EV)


def test_empty_foreign_files_and_bad_limits(tmp_path, data):
    from mlpot.train.data import read_structures

    write_store(tmp_path / "store.db", emt_clusters(4))
    for path in (data["emt"], tmp_path / "store.db"):
        for limit in (-1, 0):
            with pytest.raises(DataError, match=f"--limit {limit}"):
                read_structures(path, limit=limit)
    assert len(read_structures(data["emt"], limit=3)) == 3
    (tmp_path / "empty.xyz").write_bytes(b"")
    (tmp_path / "config.yaml").write_text("data:\n  train: x.xyz\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.figure()
    plt.savefig(tmp_path / "plot.png")
    plt.close()
    for name, words in (("empty.xyz", "empty"), ("config.yaml", "yaml file"), ("plot.png", "png file")):
        with pytest.raises(DataError, match=words):
            read_structures(tmp_path / name)
