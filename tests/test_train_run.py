"""A short training run on EMT data: it learns, writes its files, and its checkpoints
rebuild the model; eval prints JSON; NaN losses, damaged checkpoints and existing runs
give clear errors."""
import json
import shutil

import numpy as np
import pytest
import torch

from mlpot.cli import main
from mlpot.train.evaluate import evaluate_potential
from mlpot.train import load_config, train
from mlpot.train.checkpoint import CheckpointError, load_checkpoint, load_potential, save_checkpoint
from mlpot.train.metrics import COLUMNS, read_metrics_csv
from mlpot.train.trainer import RunExistsError, TrainingError
from test_train_fixtures import emt_clusters, write_config, write_emt_data


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(config path, data path, run folder, summary) of a 12-epoch run on 40 structures."""
    folder = tmp_path_factory.mktemp("train_run")
    data = write_emt_data(folder / "emt.xyz", n=60)
    config = write_config(folder, data, training={"max_epochs": 12})
    summary = train(load_config(config, [f"data.test={data}"]), quiet=True)
    return config, data, folder / "run", summary


def test_short_run_reduces_validation_error(trained):
    _, _, run, summary = trained
    history = read_metrics_csv(run / "metrics.csv")
    assert [r["epoch"] for r in history] == list(range(1, 13))
    assert summary["stop_reason"] == "max_epochs"
    first, best = history[0], min(history, key=lambda r: r["val_loss"])
    assert best["val_loss"] < 0.5 * first["val_loss"]
    assert best["val_forces_mae_meV_per_A"] < first["val_forces_mae_meV_per_A"]


def test_run_folder_holds_every_file(trained):
    _, _, run, _ = trained
    for name in ("best.ckpt", "last.ckpt", "metrics.csv", "learning_curve.png", "config.yaml", "split.npz"):
        assert (run / name).stat().st_size > 0, name
    assert (run / "metrics.csv").read_text().splitlines()[0].split(",") == list(COLUMNS)
    split = np.load(run / "split.npz")
    assert (len(split["train"]), len(split["val"])) == (40, 20)
    assert not set(split["train"]) & set(split["val"])
    assert load_config(run / "config.yaml") == load_config(trained[0], [f"data.test={trained[1]}"])
    test_metrics = json.loads((run / "test_metrics.json").read_text())
    assert test_metrics["n_structures"] == 60 and test_metrics == trained[3]["test"]


def test_checkpoint_is_plain_and_rebuilds_the_validated_model(trained):
    _, data, run, summary = trained
    raw = torch.load(run / "best.ckpt", weights_only=True)
    assert raw["species"] == [29] and isinstance(raw["config"], dict)
    state = load_checkpoint(run / "best.ckpt")
    assert state["epoch"] == summary["best_epoch"]
    potential = load_potential(run / "best.ckpt")
    structures = emt_clusters(60)
    val = [structures[i] for i in state["split"]["val"].tolist()]
    errors = evaluate_potential(potential, val)
    row = state["history"][-1]
    assert errors["energy_mae_meV"] == pytest.approx(row["val_energy_mae_meV"], rel=1e-4)
    assert errors["forces_mae_meV_per_A"] == pytest.approx(row["val_forces_mae_meV_per_A"], rel=1e-4)


def test_eval_prints_json_and_plots(trained, capsys, tmp_path):
    _, data, run, _ = trained
    plot = tmp_path / "parity.png"
    assert main(["eval", str(run / "best.ckpt"), str(data), "--plot", str(plot)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_structures"] == 60
    for key in ("energy_mae_meV", "energy_rmse_meV", "energy_mae_meV_per_atom", "energy_rmse_meV_per_atom",
                "forces_mae_meV_per_A", "forces_rmse_meV_per_A"):
        assert np.isfinite(result[key]) and result[key] > 0
    assert result["energy_rmse_meV"] >= result["energy_mae_meV"]
    assert plot.stat().st_size > 0


def test_existing_run_is_not_overwritten(trained, capsys):
    config, _, run, _ = trained
    before = (run / "last.ckpt").read_bytes()
    with pytest.raises(RunExistsError, match="--resume"):
        train(load_config(config), quiet=True)
    assert main(["train", str(config), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (run / "last.ckpt").read_bytes() == before


def test_damaged_checkpoints_are_named_and_never_loaded(trained, tmp_path, capsys):
    config, _, run, _ = trained
    good = (run / "last.ckpt").read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good[: len(good) // 2])
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF
    (tmp_path / "flipped.ckpt").write_bytes(bytes(flipped))
    for name in ("truncated.ckpt", "flipped.ckpt"):
        with pytest.raises(CheckpointError, match=name):
            load_potential(tmp_path / name)
    # a resume from a damaged last.ckpt stops with the file's name
    copy = tmp_path / "run_copy"
    shutil.copytree(run, copy)
    (copy / "last.ckpt").write_bytes(good[:1000])
    assert main(["train", str(config), "--resume", "--quiet", "--set", f"output={copy}"]) == 2
    err = capsys.readouterr().err
    assert "last.ckpt" in err and "damaged" in err


def test_interrupted_write_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "x.ckpt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def broken_save(obj, fh):
        fh.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr("mlpot.train.checkpoint.torch.save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["x.ckpt"]


def test_nan_loss_stops_naming_epoch_and_batch(tmp_path, monkeypatch):
    import mlpot.train.trainer as trainer

    data = write_emt_data(tmp_path / "emt.xyz", n=20)
    config = write_config(tmp_path, data, n_train=12, n_val=4, training={"max_epochs": 3})
    real_loss = trainer.weighted_loss
    calls = []

    def loss_turning_nan(*args, **kwargs):
        calls.append(1)
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if len(calls) == 4 else loss   # epoch 2, batch 2 (2 batches/epoch)

    monkeypatch.setattr(trainer, "weighted_loss", loss_turning_nan)
    with pytest.raises(TrainingError, match="epoch 2, batch 2"):
        train(load_config(config), quiet=True)
    assert load_checkpoint(tmp_path / "run" / "last.ckpt")["epoch"] == 1


def test_eval_of_exported_model_matches_the_checkpoint(trained, capsys, tmp_path):
    _, data, run, _ = trained
    model = tmp_path / "model.pt"
    assert main(["export", str(run / "best.ckpt"), "-o", str(model)]) == 0
    capsys.readouterr()
    results = []
    for path in (run / "best.ckpt", model):
        assert main(["eval", str(path), str(data)]) == 0
        results.append(json.loads(capsys.readouterr().out))
    for key in ("n_structures", "energy_mae_meV", "forces_mae_meV_per_A", "forces_rmse_meV_per_A"):
        assert results[1][key] == pytest.approx(results[0][key], rel=1e-4), key


def test_eval_refuses_elements_the_model_does_not_know(trained, tmp_path, capsys):
    import ase.io
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    _, _, run, _ = trained
    water = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    water.calc = SinglePointCalculator(water, energy=-14.0, forces=np.zeros((3, 3)))
    ase.io.write(tmp_path / "water.xyz", water, format="extxyz")
    assert main(["eval", str(run / "best.ckpt"), str(tmp_path / "water.xyz")]) == 2
    assert "Z=[1, 8]" in capsys.readouterr().err


def test_resume_with_another_model_is_refused(trained, capsys):
    config, _, run, _ = trained
    assert main(["train", str(config), "--resume", "--quiet", "--set", "model.n_filters=32"]) == 2
    assert "model.n_filters" in capsys.readouterr().err
