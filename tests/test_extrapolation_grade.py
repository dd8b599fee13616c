"""A single wACSF / ACSF model's per-atom extrapolation grade: how far an atom's descriptors lie
outside the range the training atoms had (issue: uncertainty that can stop a run)."""
import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot import MLPotCalculator
from mlpot.data import atoms_to_graph
from mlpot.deploy.export import export_model
from mlpot.model.config import ModelConfig, build_potential
from mlpot.model.statistics import fit_statistics

CUTOFF = 4.0


def _frames(n=6):
    frames = []
    for seed in range(n):
        atoms = molecule("CH3CH2OH")
        atoms.rattle(0.04, seed=seed)
        atoms.calc = SinglePointCalculator(atoms, energy=-float(seed), forces=np.zeros((len(atoms), 3)))
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module", params=["wacsf", "acsf"])
def model_file(request, tmp_path_factory):
    torch.manual_seed(0)
    cfg = ModelConfig(representation=request.param, cutoff=CUTOFF, n_radial=6, n_angular=2, zetas=[1.0, 2.0],
                      n_hidden=[8], n_layers=2)
    model = build_potential(cfg, [1, 6, 8]).double()
    fit_statistics(model, [atoms_to_graph(a, CUTOFF) for a in _frames()])
    path = tmp_path_factory.mktemp("grade") / f"{request.param}.pt"
    export_model(model, path, "float64")
    return path


def test_zero_on_the_training_atoms_and_growing_as_the_structure_leaves_them(model_file):
    calc = MLPotCalculator(model_file)
    assert "extrapolation_grade" in calc.implemented_properties
    for atoms in _frames():
        atoms.calc = calc
        grade = calc.get_property("extrapolation_grade", atoms)
        assert grade.shape == (len(atoms),) and grade.max() < 1e-9   # rounding of the fitted range
    worst = []
    for factor in (0.95, 0.85, 0.75):            # squeezed: bonds shorter than any in training
        atoms = _frames(1)[0]
        atoms.positions *= factor
        atoms.calc = calc
        worst.append(calc.get_property("extrapolation_grade", atoms).max())
        assert np.isfinite(atoms.get_potential_energy())
    assert 0 < worst[0] < worst[1] < worst[2], worst


def test_schnet_files_and_committees_have_no_grade(model_file, tmp_path):
    from export_helpers import tiny_potential

    export_model(tiny_potential(dipole=False), tmp_path / "schnet.pt", "float64", kernels="reference")
    assert "extrapolation_grade" not in MLPotCalculator(tmp_path / "schnet.pt").implemented_properties
    assert "extrapolation_grade" not in MLPotCalculator([model_file, model_file]).implemented_properties


def test_a_run_halts_when_the_grade_passes_the_threshold(model_file, tmp_path):
    from ase.io import read

    from mlpot.deploy.committee import ExtrapolationError

    saved = tmp_path / "extrapolated.extxyz"
    calc = MLPotCalculator(model_file, halt_extrapolation=0.5, deviation_file=str(saved))
    for atoms in _frames():                        # inside the training range: goes on
        atoms.calc = calc
        atoms.get_forces()
    squeezed = _frames(1)[0]
    squeezed.positions *= 0.75
    squeezed.calc = calc
    with pytest.raises(ExtrapolationError, match="extrapolation grade .* passed halt_extrapolation 0.5"):
        squeezed.get_forces()
    frame = read(saved)
    assert frame.arrays["extrapolation_grade"].max() > 0.5 and len(read(saved, ":")) == 1
    collecting = MLPotCalculator(model_file, halt_extrapolation=0.5, on_deviation="write",
                                 deviation_file=str(saved))
    squeezed.calc = collecting
    assert np.isfinite(squeezed.get_potential_energy())          # "write" goes on
    assert len(read(saved, ":")) == 2


def test_halt_extrapolation_needs_a_symmetry_function_model(model_file, tmp_path):
    from export_helpers import tiny_potential

    export_model(tiny_potential(dipole=False), tmp_path / "schnet.pt", "float64", kernels="reference")
    with pytest.raises(ValueError, match="halt_extrapolation needs a single wACSF or ACSF model"):
        MLPotCalculator(tmp_path / "schnet.pt", halt_extrapolation=1.0)
    with pytest.raises(ValueError, match="positive number"):
        MLPotCalculator(model_file, halt_extrapolation=0.0)
