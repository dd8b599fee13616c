"""Budget-tied schedules: cosine learning rate, stage two's loss weights, the per-atom energy
loss, and their behaviour in a run (and after a resume)."""
import math

import pytest
import torch

from mlpot import keys as K
from mlpot.train import load_config, train
from mlpot.train.checkpoint import load_checkpoint
from mlpot.train.config import ConfigError
from mlpot.train.losses import PER_ATOM_ENERGY, weighted_loss
from mlpot.train.metrics import read_metrics_csv, summarize
from mlpot.train.schedule import budget_fraction, cosine_lr, stage_of
from mlpot.train.trainer import Trainer
from test_train_fixtures import write_config, write_emt_data


def test_budget_fraction_by_time_or_steps():
    assert budget_fraction(30.0, 5, 120.0, 5, 10) == 0.25            # the time limit comes first
    assert budget_fraction(30.0, 40, 120.0, 5, 10) == pytest.approx(0.8)   # the epoch limit does
    assert budget_fraction(500.0, 0, 120.0, 5, 10) == 1.0
    assert budget_fraction(1e9, 20, None, 5, 10) == pytest.approx(0.4)  # 20 of 50 steps
    assert budget_fraction(0.0, 80, None, 5, 10) == 1.0


def test_cosine_lr_runs_from_lr_to_min_lr():
    assert cosine_lr(1e-3, 1e-5, 0.0) == pytest.approx(1e-3)
    assert cosine_lr(1e-3, 1e-5, 0.5) == pytest.approx(0.5 * (1e-3 + 1e-5))
    assert cosine_lr(1e-3, 1e-5, 1.0) == pytest.approx(1e-5)
    assert cosine_lr(1e-3, 1e-5, 2.0) == pytest.approx(1e-5)
    values = [cosine_lr(1.0, 0.0, f / 10) for f in range(11)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_stage_of():
    assert stage_of(0.74, 0.75) == 1 and stage_of(0.75, 0.75) == 2 and stage_of(1.0, None) == 1


def test_per_atom_energy_loss():
    batch = {K.POSITIONS: torch.zeros(5, 3, dtype=torch.float64), K.ATOMIC_NUMBERS: torch.ones(5, dtype=torch.long),
             K.N_ATOMS: torch.tensor([2, 3]), K.ENERGY: torch.tensor([1.0, 2.0], dtype=torch.float64)}
    pred = {K.ENERGY: torch.tensor([1.2, 2.6], dtype=torch.float64)}
    per_atom = weighted_loss(pred, batch, {PER_ATOM_ENERGY: 3.0})
    assert float(per_atom) == pytest.approx(3.0 * ((0.2 / 2) ** 2 + (0.6 / 3) ** 2) / 2)
    per_structure = weighted_loss(pred, batch, {K.ENERGY: 3.0})
    assert float(per_structure) == pytest.approx(3.0 * (0.2 ** 2 + 0.6 ** 2) / 2)
    sums = {"n_structures": 2.0, "energy_per_atom_sq": (0.2 / 2) ** 2 + (0.6 / 3) ** 2}
    assert summarize(sums, {PER_ATOM_ENERGY: 3.0})["loss"] == pytest.approx(float(per_atom))


@pytest.mark.parametrize("override, message", [
    ("training.energy_loss=per_molecule", "energy_loss"),
    ("training.stage_two_start=1.5", "stage_two_start"),
    ("training.stage_two_energy_weight=-1", "stage-two loss weights"),
    ("training.stage_two_ramp=1.5", "stage_two_ramp"),
    ("training.stage_two_select=val_loss", "stage_two_select"),
    ("training.scheduler=linear", "cosine, exponential, plateau or none"),
])
def test_bad_schedule_settings_are_refused(tmp_path, override, message):
    config = write_config(tmp_path, write_emt_data(tmp_path / "emt.xyz", n=10), n_train=6, n_val=4)
    with pytest.raises(ConfigError, match=message):
        load_config(config, [override])


class Interrupted(Exception):
    pass


def test_cosine_and_stage_two_in_a_run_and_after_resume(tmp_path, monkeypatch):
    """6 epochs by max_epochs: lr falls from lr to min_lr along the cosine; stage two from
    half the budget (after epoch 3) with the energy weight ramped up; a run interrupted after
    4 epochs (inside the ramp) and resumed gives the same metrics (the ramp is a function of the budget)."""
    data = write_emt_data(tmp_path / "emt.xyz", n=30)
    training = {"max_epochs": 6, "scheduler": "cosine", "lr": 5e-3, "min_lr": 1e-4, "energy_loss": "per_atom",
                "energy_weight": 0.1, "stage_two_start": 0.5, "stage_two_energy_weight": 10.0, "stage_two_ramp": 0.25, "dtype": "float64",
                "ema_decay": 0.0, "patience": None}
    config = write_config(tmp_path / "whole", data, training=training, n_train=16, n_val=8)
    lines = []
    train(load_config(config), log=lines.append)
    rows = read_metrics_csv(tmp_path / "whole" / "run" / "metrics.csv")
    lrs = [r["lr"] for r in rows]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    # 2 steps per epoch, lr set before each step: the last step is at fraction 11/12
    assert lrs[-1] == pytest.approx(cosine_lr(5e-3, 1e-4, 11 / 12))
    assert [line for line in lines if line.startswith("stage two after epoch 3")]
    state = load_checkpoint(tmp_path / "whole" / "run" / "last.ckpt")
    assert state["stage"] == 2 and state["stage_two_from"] == pytest.approx(0.5)
    assert [r["stage"] for r in rows] == [1, 1, 1, 2, 2, 2]

    cut = write_config(tmp_path / "cut", data, training=dict(training), n_train=16, n_val=8)
    original = Trainer._write_files

    def stop_inside_the_ramp(self, *args):
        original(self, *args)
        if self.progress.epoch == 4:
            raise Interrupted

    monkeypatch.setattr(Trainer, "_write_files", stop_inside_the_ramp)
    with pytest.raises(Interrupted):
        train(load_config(cut), quiet=True)
    monkeypatch.setattr(Trainer, "_write_files", original)
    train(load_config(cut), resume=True, quiet=True)
    resumed = read_metrics_csv(tmp_path / "cut" / "run" / "metrics.csv")
    for a, b in zip(rows, resumed):
        for key in ("train_loss", "val_loss", "lr"):
            assert b[key] == pytest.approx(a[key], rel=1e-9), key
    assert math.isfinite(resumed[-1]["val_loss"])


def test_patience_auto_is_off_under_cosine_and_100_otherwise(tmp_path):
    config = write_config(tmp_path, write_emt_data(tmp_path / "emt.xyz", n=10), n_train=6, n_val=4)
    assert load_config(config).training.early_stopping_patience is None
    assert load_config(config, ["training.scheduler=exponential"]).training.early_stopping_patience == 100
    assert load_config(config, ["training.patience=7"]).training.early_stopping_patience == 7
    for bad in ("0", "soon", "true"):
        with pytest.raises(ConfigError, match="patience"):
            load_config(config, [f"training.patience={bad}"])


def test_early_stopping_ends_a_run_when_validation_stops_improving(tmp_path, monkeypatch):
    """A validation loss that never improves after epoch 1: patience 2 stops the run after
    epoch 3 of 20; under cosine with patience auto the run goes on to max_epochs."""
    original = Trainer.validate

    def flat_validation(self):
        return {**original(self), "loss": 1.0}

    monkeypatch.setattr(Trainer, "validate", flat_validation)
    data = write_emt_data(tmp_path / "emt.xyz", n=12)
    config = write_config(tmp_path / "stops", data, n_train=8, n_val=4,
                          training={"max_epochs": 20, "scheduler": "exponential", "patience": 2})
    summary = train(load_config(config), quiet=True)
    assert summary["stop_reason"] == "early_stopping" and summary["epochs"] == 3
    config = write_config(tmp_path / "cosine", data, n_train=8, n_val=4, training={"max_epochs": 5})
    summary = train(load_config(config), quiet=True)
    assert summary["stop_reason"] == "max_epochs" and summary["epochs"] == 5
