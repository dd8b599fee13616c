"""md_examples/ scripts run as a chemist would run them, for a few steps on a tiny exported model."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ase.io import read

from export_helpers import tiny_potential
from mlpot.deploy.export import export_model

EXAMPLES = Path(__file__).resolve().parents[1] / "md_examples"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("md_examples") / "model.pt"
    export_model(tiny_potential(dipole=False), path, "float64")
    return path


def run_example(script, model, cwd, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run([sys.executable, str(EXAMPLES / script), "--model", str(model), "--threads", "1", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_optimize(model, tmp_path):
    result = run_example("optimize.py", model, tmp_path, "--steps", "3", "--molecule", "methanol")
    assert result.returncode == 1, result.stderr  # 3 steps do not converge: exit status 1 says so
    assert "NOT converged after 3 steps" in result.stdout
    energies = [float(e) for e in re.findall(r"step +\d+ +E = (\S+) eV", result.stdout)]
    assert len(energies) == 4 and energies[-1] < energies[0]
    out = tmp_path / "optimize_output"
    assert read(out / "optimized.xyz").get_chemical_formula() == "CH4O"
    assert (out / "optimize_energy.png").stat().st_size > 1000 and (out / "optimize.log").exists()


def test_md_nvt(model, tmp_path):
    result = run_example("md_nvt.py", model, tmp_path, "--steps", "20", "--interval", "5")
    assert result.returncode == 0, result.stderr
    assert "temperature over the second half" in result.stdout
    out = tmp_path / "md_nvt_output"
    assert len(read(out / "md_nvt.traj", index=":")) == 5
    assert len((out / "md_nvt.log").read_text().splitlines()) == 6  # header + 5 rows
    assert (out / "md_nvt.png").stat().st_size > 1000


def test_md_nve(model, tmp_path):
    result = run_example("md_nve.py", model, tmp_path, "--steps", "40", "--interval", "5")
    assert result.returncode == 0, result.stderr
    drift = re.search(r"energy drift \(linear fit\): (\S+) eV/atom/ps", result.stdout)
    assert drift and abs(float(drift.group(1))) < 1e-2
    out = tmp_path / "md_nve_output"
    assert (out / "md_nve.png").stat().st_size > 1000 and len(read(out / "md_nve.traj", index=":")) == 9


@pytest.mark.parametrize("script", ["optimize.py", "md_nvt.py", "md_nve.py"])
def test_missing_model_says_what_to_do(script, tmp_path):
    import runpy

    main = runpy.run_path(str(EXAMPLES / script))["main"]  # in-process: no second torch import
    with pytest.raises(SystemExit, match="run `mlpot demo` first or pass --model"):
        main(["--model", str(tmp_path / "nothing.pt"), "--out", str(tmp_path / "out")])
