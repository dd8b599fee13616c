"""Bad input to a model never gives a silent number or a traceback: overlapping atoms, a charged
structure for a dipole model, a float32 Hessian, model files and checkpoints that this mlpot
cannot load (damaged, or from another mlpot), each one clear line."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from export_helpers import CUTOFF, ethanol, periodic_ethanol, tiny_potential
from mlpot.cli import main
from mlpot.deploy.export import export_model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """float64 and float32 model files of a tiny SchNet with a dipole head."""
    folder = tmp_path_factory.mktemp("models")
    potential = tiny_potential(dipole=True)
    export_model(potential, folder / "f64.pt", "float64", kernels="reference")
    export_model(potential, folder / "f32.pt", "float32", kernels="reference")
    return folder


def _calculator(path):
    from mlpot.deploy.calculator import MLPotCalculator

    return MLPotCalculator(str(path))


def test_overlapping_atoms_are_refused_by_name(files):
    atoms = ethanol()
    atoms.positions[4] = atoms.positions[1] + [0.0, 0.0, 0.05]
    atoms.calc = _calculator(files / "f64.pt")
    with pytest.raises(ValueError, match=r"atoms 1 and 4 0\.05 Å apart .*overlapping"):
        atoms.get_potential_energy()
    # a periodic image counts: atom 0 sits on the image of atom 2 one cell vector away
    crystal = periodic_ethanol()
    crystal.positions[0] = crystal.positions[2] + crystal.cell[0] + [0.03, 0.0, 0.0]
    crystal.calc = _calculator(files / "f64.pt")
    with pytest.raises(ValueError, match=r"atoms 0 and 2 0\.03 Å apart"):
        crystal.get_forces()
    fine = ethanol()                       # a normal structure is not affected
    fine.calc = _calculator(files / "f64.pt")
    assert np.isfinite(fine.get_potential_energy())


def test_a_dipole_model_refuses_a_charged_structure(files):
    atoms = ethanol()
    atoms.calc = _calculator(files / "f64.pt")
    neutral = atoms.get_dipole_moment()
    atoms.info["charge"] = 1
    with pytest.raises(ValueError, match=r"net charge of 1 e.*neutral structures only"):
        atoms.get_dipole_moment()
    atoms.info["charge"] = 0
    np.testing.assert_allclose(atoms.get_dipole_moment(), neutral)


def test_a_float32_hessian_warns(files):
    atoms = ethanol()
    with pytest.warns(UserWarning, match="--dtype float64"):
        hessian = _calculator(files / "f32.pt").get_hessian(atoms)
    assert np.isfinite(hessian).all()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _calculator(files / "f64.pt").get_hessian(atoms)


def _damaged_copy(source, target):
    """`source` with 100 bytes inside its largest weight tensor flipped (a bad disk or copy)."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        entry = max((archive.getinfo(n) for n in archive.namelist() if "/data/" in n), key=lambda e: e.file_size)
        start = entry.header_offset + 30 + len(entry.filename.encode()) + len(entry.extra)
    for k in range(start + 50, start + 150):
        data[k] ^= 0xFF
    target.write_bytes(bytes(data))


def test_damaged_model_file_one_line(files, tmp_path, capsys):
    from mlpot.deploy.export import load_model

    damaged = tmp_path / "damaged.pt"
    _damaged_copy(files / "f64.pt", damaged)
    with pytest.raises(ValueError, match="damaged or truncated.*export it again"):
        load_model(damaged)
    structures = tmp_path / "one.extxyz"
    atoms = ethanol()
    from ase.calculators.singlepoint import SinglePointCalculator
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((len(atoms), 3)))
    atoms.write(structures)
    assert main(["eval", str(damaged), str(structures)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "damaged or truncated" in err[0]
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((files / "f64.pt").read_bytes()[:2000])
    assert main(["info", str(truncated)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "damaged or truncated" in captured.err


FUTURE_OPERATOR = """
import json, sys, torch
lib = torch.library.Library("mlpot_future", "DEF")
lib.define("twice(Tensor x) -> Tensor")
lib.impl("twice", lambda x: 2 * x, "CompositeExplicitAutograd")

class Future(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mlpot_future.twice(x)

metadata = json.loads(sys.argv[2])
metadata["mlpot_version"] = "9.9.0"
torch.jit.save(torch.jit.script(Future()), sys.argv[1], _extra_files={"mlpot.json": json.dumps(metadata)})
"""


def test_a_file_with_operators_this_mlpot_lacks_names_its_writer(files, tmp_path, capsys):
    from mlpot.deploy.export import load_model, read_metadata

    future = tmp_path / "future.pt"
    script = tmp_path / "future_operator.py"      # TorchScript reads the source of what it scripts
    script.write_text(FUTURE_OPERATOR)
    subprocess.run([sys.executable, str(script), str(future),
                    json.dumps(read_metadata(files / "f64.pt"))], check=True, timeout=120)
    with pytest.raises(ValueError, match=r"written by mlpot 9\.9\.0 with operators this mlpot .* does not have"):
        load_model(future)
    with pytest.raises(ValueError, match="mlpot 9.9.0"):
        _calculator(future)


def test_a_checkpoint_this_mlpot_cannot_rebuild_names_its_writer(tmp_path, capsys):
    from mlpot.model.config import ModelConfig
    from mlpot.train import checkpoint

    potential = tiny_potential(dipole=False, dtype=torch.float32)
    config = dataclasses.asdict(ModelConfig(n_atom_basis=16, n_filters=16, n_interactions=2, n_rbf=8,
                                            cutoff=CUTOFF))
    config["equivariant_layers"] = 2                  # a setting of a later mlpot
    state = checkpoint.to_plain({"config": {}, "model_config": config, "species": [1, 6, 8], "dtype": "float32",
                                 "model": potential.state_dict(), "model_ema": potential.state_dict()})
    state.update(format=checkpoint.FORMAT, format_version=checkpoint.FORMAT_VERSION, mlpot_version="9.9.0")
    state["checksum"] = checkpoint.checksum(state)
    torch.save(state, tmp_path / "best.ckpt")
    with pytest.raises(checkpoint.CheckpointError, match=r"written by mlpot 9\.9\.0 .* cannot rebuild"):
        checkpoint.load_potential(tmp_path / "best.ckpt")
    assert main(["export", str(tmp_path / "best.ckpt"), "-o", str(tmp_path / "model.pt")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "mlpot 9.9.0" in captured.err
    assert not (tmp_path / "model.pt").exists()
