"""Committees in training: training.ensemble (members, seeds, bootstrap, resume, refusal), warm
starts (training.init_from) and `mlpot export` of a committee run."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mlpot import MLPotCalculator
from mlpot.deploy.export import read_metadata
from mlpot.train import load_config, train
from mlpot.train.checkpoint import load_checkpoint
from mlpot.train.config import ConfigError
from mlpot.train.committee import member_checkpoints, read_committee
from mlpot.train.trainer import RunExistsError, TrainingError
from test_train_fixtures import emt_clusters, write_config, write_emt_data

TRAINING = {"max_epochs": 2, "batch_size": 8, "scheduler": "none", "stage_two_start": None}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_emt_data(tmp_path_factory.mktemp("emt") / "emt.xyz", n=36)


def test_members_differ_in_seed_and_share_the_split(tmp_path, data):
    config = write_config(tmp_path, data, n_train=24, n_val=8, training={**TRAINING, "ensemble": 3})
    summary = train(load_config(config), quiet=True)
    run = tmp_path / "run"
    assert summary["n_members"] == 3 and len(summary["members"]) == 3
    record = read_committee(run)
    assert record["members"] == ["member_0", "member_1", "member_2"]
    assert record["seeds"] == [0, 1, 2] and record["finished"] == [0, 1, 2]
    states = [load_checkpoint(p) for p in member_checkpoints(run)]
    for state in states[1:]:
        np.testing.assert_array_equal(state["split"]["train"], states[0]["split"]["train"])
        assert any(not torch.equal(v, states[0]["model"][k]) for k, v in state["model"].items())
    assert [s["config"]["training"]["seed"] for s in states] == [0, 1, 2]
    # a second start without --resume refuses to overwrite the members
    with pytest.raises(RunExistsError, match="--resume"):
        train(load_config(config), quiet=True)


def test_resume_skips_finished_members(tmp_path, data):
    config = write_config(tmp_path, data, n_train=24, n_val=8, training={**TRAINING, "ensemble": 2})
    train(load_config(config), quiet=True)
    run = tmp_path / "run"
    record = read_committee(run)
    record["finished"] = [0]                               # as if killed while member 1 trained
    (run / "ensemble.json").write_text(json.dumps(record))
    before = (run / "member_0" / "best.ckpt").stat().st_mtime_ns
    lines = []
    summary = train(load_config(config, ["training.max_epochs=3"]), resume=True, log=lines.append)
    assert (run / "member_0" / "best.ckpt").stat().st_mtime_ns == before
    assert any("finished earlier" in line for line in lines)
    assert len(summary["members"]) == 1 and summary["members"][0]["epochs"] == 3
    assert read_committee(run)["finished"] == [0, 1]
    with pytest.raises(RunExistsError, match="committee of 2"):
        train(load_config(config, ["training.ensemble=3"]), resume=True, quiet=True)


def test_bootstrap_resamples_the_training_set(tmp_path, data):
    from mlpot.train.trainer import bootstrap_sample
    from mlpot.data.dataset import AtomsDataset

    dataset = AtomsDataset(emt_clusters(20), cutoff=4.0)
    a, b = bootstrap_sample(dataset, 0), bootstrap_sample(dataset, 1)
    assert len(a) == len(b) == 20
    ids = lambda d: [id(s) for s in d.structures]          # noqa: E731
    assert len(set(ids(a))) < 20 and ids(a) != ids(b)      # with replacement, member-specific
    assert ids(bootstrap_sample(dataset, 0)) == ids(a)     # reproducible (resume)
    config = write_config(tmp_path, data, n_train=24, n_val=8,
                          training={**TRAINING, "ensemble": 2, "bootstrap": True, "max_epochs": 1})
    train(load_config(config), quiet=True)


def test_bad_ensemble_size_is_refused(tmp_path, data):
    config = write_config(tmp_path, data, training={"ensemble": 0})
    with pytest.raises(ConfigError, match="ensemble"):
        load_config(config)


def test_warm_start_begins_from_the_checkpoint(tmp_path, data):
    first = write_config(tmp_path / "a", data, n_train=24, n_val=8, training=TRAINING)
    train(load_config(first), quiet=True)
    best = tmp_path / "a" / "run" / "best.ckpt"
    warm = write_config(tmp_path / "b", data, n_train=24, n_val=8,
                        training={**TRAINING, "init_from": str(best), "max_epochs": 1, "lr": 1e-12})
    train(load_config(warm), quiet=True)
    start, after = load_checkpoint(best), load_checkpoint(tmp_path / "b" / "run" / "best.ckpt")
    for key, value in start["model_ema"].items():        # lr ~ 0: the weights stay where they began
        torch.testing.assert_close(after["model"][key], value, atol=1e-6, rtol=0)
    other = write_config(tmp_path / "c", data, n_train=24, n_val=8, model={"n_atom_basis": 8},
                         training={**TRAINING, "init_from": str(best)})
    with pytest.raises(TrainingError, match="n_atom_basis"):
        train(load_config(other), quiet=True)


def test_export_of_a_committee_run_writes_every_member(tmp_path, data):
    config = write_config(tmp_path, data, n_train=24, n_val=8, training={**TRAINING, "ensemble": 2})
    run = [sys.executable, "-m", "mlpot"]
    done = subprocess.run(run + ["train", str(config), "--quiet", "--set", "training.ensemble=1",
                                 "--ensemble", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "committee.pt"
    done = subprocess.run(run + ["export", str(tmp_path / "run"), "-o", str(out), "--dtype", "float64"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    files = [tmp_path / "committee_0.pt", tmp_path / "committee_1.pt"]
    assert all(f.is_file() for f in files) and "a committee of 2" in done.stdout
    atoms = emt_clusters(1, seed=3)[0]
    atoms.calc = MLPotCalculator(files)
    assert atoms.calc.get_property("uncertainty", atoms) > 0
    again = subprocess.run(run + ["export", str(tmp_path / "run"), "-o", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr
    # -o committee.pt2: one package with both members stacked, the same committee
    package = tmp_path / "committee.pt2"
    done = subprocess.run(run + ["export", str(tmp_path / "run"), "-o", str(package), "--dtype", "float64"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "a committee of 2 in one file" in done.stdout and not (tmp_path / "committee_0.pt2").exists()
    assert read_metadata(package)["pt2_models"] == ["model", "lammps_0", "lammps_1"]    # and LAMMPS' models
    one = atoms.copy()
    one.calc = MLPotCalculator(package)
    for name in ("energy", "forces", "forces_std", "uncertainty"):
        expected = np.asarray(atoms.calc.get_property(name, atoms))
        assert np.abs(one.calc.get_property(name, one) - expected).max() <= 1e-10 * np.abs(expected).max(), name
