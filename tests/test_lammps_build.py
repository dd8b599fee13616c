"""The plugin build's cache key, the wheel look-ups and the data-file writer (no compiling)."""
import json
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
    (copy / "pair_mlpot.cpp").unlink()
    (copy / "extra.inc").write_text("// a header of any name counts\n")
    assert build.source_hash(copy) not in (original, changed)


def test_build_key_covers_every_input():
    pytest.importorskip("lammps")
    inputs = build.build_inputs(build.source_dir(), None)
    assert inputs["sources"] == build.source_hash(build.source_dir())
    assert inputs["lammps_headers"] == build.source_hash(wheels.lammps_include_dir())
    key = build.build_key(inputs)
    assert key.startswith(f"torch-{wheels.torch_version().replace('+', '_')}_lammps-{wheels.lammps_version()}_")
    for name in inputs:
        assert build.build_key(dict(inputs, **{name: inputs[name] + "x"})) != key, name


def test_a_cached_plugin_is_served_only_for_its_own_inputs(tmp_path, monkeypatch):
    """build_plugin serves a cached file only when its build.json records the same inputs;
    otherwise (edited record, no record) it builds again. No compiler runs here."""
    pytest.importorskip("lammps")
    builds = []

    def fake_compile(src, folder, jobs, verbose, ops_library, name):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / build.PLUGIN_NAME).write_text(f"build {len(builds)} {name}")
        builds.append(name)
        return folder / build.PLUGIN_NAME

    monkeypatch.setattr(build, "_compile", fake_compile)
    monkeypatch.setattr(build, "fused_kernel_library", lambda: None)
    path = build.build_plugin(tmp_path)
    assert builds == [path.parent.name] and build.build_plugin(tmp_path) == path and len(builds) == 1
    record = path.parent / "build.json"
    saved = json.loads(record.read_text())
    assert saved["inputs"] == build.build_inputs(build.source_dir(), None)
    record.write_text(json.dumps(dict(saved, inputs=dict(saved["inputs"], sources="other"))))
    assert build.build_plugin(tmp_path) == path and len(builds) == 2
    record.unlink()
    assert build.build_plugin(tmp_path) == path and len(builds) == 3
    assert build.build_plugin(tmp_path, force=True) == path and len(builds) == 4


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
