"""A committee run that leaves its training data stops (or saves the frame) once the force
deviation passes halt_deviation, at the first such frame and not before."""
from __future__ import annotations

import numpy as np
import pytest
from ase.io import read

from export_helpers import ethanol, tiny_potential
from mlpot.deploy.calculator import MLPotCalculator
from mlpot.deploy.committee import ExtrapolationError
from mlpot.deploy.export import export_model


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    folder = tmp_path_factory.mktemp("committee")
    paths = []
    for seed in (0, 1):
        path = folder / f"model_{seed}.pt"
        export_model(tiny_potential(dipole=False, seed=seed), path, "float64", kernels="reference")
        paths.append(str(path))
    return paths


def squeezed(steps: int = 15):
    """Ethanol squeezed towards its centre of mass, 2 % more each frame (bonds shorter than any
    the members were built on; their deviation grows)."""
    atoms = ethanol()
    centre = atoms.get_center_of_mass()
    frames = []
    for k in range(steps):
        frame = atoms.copy()
        frame.positions = centre + (atoms.positions - centre) * (1 - 0.02 * k)
        frames.append(frame)
    return frames


def test_a_run_squeezed_out_of_its_data_halts_at_the_first_deviating_frame(members, tmp_path):
    frames = squeezed()
    watcher = MLPotCalculator(members)                     # no threshold: the deviation along the path
    deviations = []
    for frame in frames:
        frame.calc = watcher
        frame.get_forces()
        deviations.append(watcher.results["uncertainty"])
    threshold = 0.5 * (deviations[0] + max(deviations))
    first = next(k for k, d in enumerate(deviations) if d > threshold)
    assert first > 0

    saved = tmp_path / "deviating.extxyz"
    calc = MLPotCalculator(members, halt_deviation=threshold, deviation_file=str(saved))
    done = []
    with pytest.raises(ExtrapolationError, match="passed halt_deviation") as caught:
        for k, frame in enumerate(frames):
            frame = frame.copy()
            frame.calc = calc
            frame.get_forces()
            done.append(k)
    assert done == list(range(first))
    assert caught.value.deviation == pytest.approx(deviations[first], rel=1e-9)
    written = read(saved, ":")
    assert len(written) == 1
    np.testing.assert_allclose(written[0].positions, frames[first].positions, atol=1e-6)
    assert written[0].info["uncertainty"] == pytest.approx(deviations[first], rel=1e-6)

    # "write": the run goes on and every frame beyond the threshold is collected
    collected = tmp_path / "collected.extxyz"
    calc = MLPotCalculator(members, halt_deviation=threshold, on_deviation="write", deviation_file=str(collected))
    for frame in frames:
        frame = frame.copy()
        frame.calc = calc
        frame.get_forces()
    assert len(read(collected, ":")) == sum(d > threshold for d in deviations)


def test_halt_settings_are_checked(members):
    with pytest.raises(ValueError, match="needs a committee"):
        MLPotCalculator(members[0], halt_deviation=0.1)
    with pytest.raises(ValueError, match="positive force"):
        MLPotCalculator(members, halt_deviation=-1.0)
    with pytest.raises(ValueError, match="needs deviation_file"):
        MLPotCalculator(members, halt_deviation=0.1, on_deviation="write")
    with pytest.raises(ValueError, match="needs halt_deviation"):
        MLPotCalculator(members, deviation_file="x.extxyz")
