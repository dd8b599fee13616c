"""mlpot's operators as a shared library for C++ engines: `mlpot ops`, and md_examples/cpp (plain
libtorch + the library) built once and run on model files, against MLPotCalculator."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from export_helpers import ethanol, tiny_potential
from mlpot import MLPotCalculator
from mlpot.cli import main
from mlpot.lammps.cmake import configure_and_build, run_logged
from mlpot.deploy.export import export_model, read_metadata

if shutil.which("cmake") is None or shutil.which("c++") is None:
    pytest.skip("cmake or a C++ compiler not installed: the C++ example cannot be built", allow_module_level=True)

EXAMPLE = Path(__file__).resolve().parents[1] / "md_examples" / "cpp"
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def mlpot_cli(*args) -> str:
    done = subprocess.run([sys.executable, "-m", "mlpot", *args], capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def library() -> Path:
    path = Path(mlpot_cli("ops", "--path").strip())
    assert path.is_absolute() and path.name == "libmlpot_ops.so" and path.exists()
    return path


@pytest.fixture(scope="module")
def example(library, tmp_path_factory) -> Path:
    """md_examples/cpp built as its README says (`$(mlpot ops --cmake)`), with one job."""
    build = tmp_path_factory.mktemp("cpp_example")
    defines = dict(arg[2:].split("=", 1) for arg in mlpot_cli("ops", "--cmake").split())
    assert defines == {"CMAKE_PREFIX_PATH": torch.utils.cmake_prefix_path, "MLPOT_OPS_LIBRARY": str(library)}
    run_logged(configure_and_build(EXAMPLE, build, defines, jobs=1), build / "build.log", what="building md_examples/cpp")
    return build / "mlpot_forces"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """A tiny SchNet exported with the default kernels (float32: tabulated; float64: fused) and,
    float32, with --kernels reference."""
    folder = tmp_path_factory.mktemp("cpp_models")
    files = {}
    for name, dtype, kernels in [("float32", "float32", "auto"), ("float64", "float64", "auto"),
                                 ("reference", "float32", "reference")]:
        files[name] = folder / f"{name}.pt"
        export_model(tiny_potential(dipole=False, dtype=getattr(torch, dtype)), files[name], dtype=dtype, kernels=kernels)
    assert [read_metadata(files[n])["kernels"] for n in files] == ["tabulated", "fused", "reference"]
    return files


def run_example(example, model, *library):
    atoms = ethanol()
    text = "".join(f"{z} {float(x)!r} {float(y)!r} {float(w)!r}\n" for z, (x, y, w) in zip(atoms.numbers, atoms.positions))
    return atoms, subprocess.run([str(example), str(model), *library], input=text, capture_output=True, text=True, env=ENV)


def parse(stdout: str):
    lines = stdout.splitlines()
    assert lines[0].startswith("energy ") and lines[1] == "forces eV/A", stdout
    return float(lines[0].split()[1]), np.array([[float(v) for v in line.split()] for line in lines[2:]])


@pytest.mark.parametrize("name, library_arg", [("float32", []), ("float64", []), ("reference", ["-"])])
def test_the_cpp_example_equals_the_calculator(example, models, library, name, library_arg):
    """Energy and forces from C++ (default exports: with the library the build baked in; the
    reference file without any library) equal MLPotCalculator's to the file's float rounding."""
    atoms, done = run_example(example, models[name], *library_arg)
    assert done.returncode == 0, done.stderr
    energy, forces = parse(done.stdout)
    atoms.calc = MLPotCalculator(str(models[name]))
    eps = np.finfo(np.float64 if name == "float64" else np.float32).eps
    expected = atoms.get_potential_energy()
    assert abs(energy - expected) <= 4 * eps * abs(expected), (energy, expected)
    np.testing.assert_allclose(forces, atoms.get_forces(), rtol=0, atol=100 * eps)


def test_the_library_given_on_the_command_line(example, models, library):
    _, done = run_example(example, models["float32"], str(library))
    assert done.returncode == 0, done.stderr
    assert np.isfinite(parse(done.stdout)[1]).all()


def test_plain_libtorch_cannot_load_a_default_export(example, models):
    """Without the library, libtorch refuses the file at load, naming the missing operator."""
    for name in ("float32", "float64"):
        _, done = run_example(example, models[name], "-")
        assert done.returncode == 1 and "Unknown builtin op: mlpot::" in done.stderr, done.stderr


def test_mlpot_ops_summary_lists_the_operators(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    assert "mlpot::cfconv_tabulated" in out and "mlpot::cfconv" in out and torch.utils.cmake_prefix_path in out


def test_mlpot_ops_without_a_compiler_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLPOT_CACHE_DIR", str(tmp_path))      # nothing cached here
    monkeypatch.setenv("PATH", str(tmp_path))                 # no c++ or g++
    monkeypatch.delenv("CXX", raising=False)
    assert main(["ops", "--path"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "mlpot ops: no C++ compiler found" in captured.err
