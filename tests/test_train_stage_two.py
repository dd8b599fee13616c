"""Stage two (MACE's: the energy weighs more from a share of the budget on) cannot hand over a
worse model than the run had before it: its weights ramp, scaled to the loss the optimizer
knows, and best.ckpt stays the stage-one best until an epoch is better on the declared rule."""
import math

import pytest

from mlpot.data.splits import load_split
from mlpot.train.evaluate import evaluate_potential
from mlpot.train import load_config, train
from mlpot.train.checkpoint import load_checkpoint, load_potential
from mlpot.train.data import read_structures
from mlpot.train.metrics import read_metrics_csv
from mlpot.train.schedule import ramp_weights
from mlpot.train.selection import better_than
from test_train_fixtures import write_config, write_emt_data


def test_ramp_weights_move_geometrically_from_stage_one_to_stage_two():
    one, two = {"e": 1.0, "f": 1.0, "s": 0.0}, {"e": 100.0, "f": 1.0, "s": 2.0}
    assert ramp_weights(one, two, 0.5, None, 0.1) == one                 # stage two off
    assert ramp_weights(one, two, 0.74, 0.75, 0.1) == one                # before its start
    assert ramp_weights(one, two, 0.75, 0.75, 0.1) == pytest.approx(one)  # the ramp starts at stage one
    middle = ramp_weights(one, two, 0.80, 0.75, 0.1)
    assert middle["e"] == pytest.approx(10.0) and middle["f"] == pytest.approx(1.0)   # geometric: √(1·100)
    assert middle["s"] == pytest.approx(1.0)                                        # linear from 0
    assert ramp_weights(one, two, 0.9, 0.75, 0.1) == pytest.approx(two)
    assert ramp_weights(one, two, 0.75, 0.75, 0.0) == pytest.approx(two)  # no ramp: a step
    scaled = ramp_weights(one, two, 1.0, 0.75, 0.1, scale=0.02)
    assert scaled == pytest.approx({"e": 2.0, "f": 0.02, "s": 0.04})


def test_better_than_rules():
    delivered = {"energy": 2.0, "forces": 50.0, "loss": 1.0}
    assert better_than({"energy": 1.0, "forces": 50.0, "loss": 2.0}, delivered, "energy_and_forces")
    assert not better_than({"energy": 1.0, "forces": 51.0, "loss": 0.5}, delivered, "energy_and_forces")
    assert not better_than(dict(delivered), delivered, "energy_and_forces")     # equal is not better
    assert better_than({"energy": 9.0, "forces": 49.0}, delivered, "forces")
    assert better_than({"energy": 1.9, "forces": 99.0}, delivered, "energy")
    assert better_than({"energy": 9.0, "forces": 99.0, "loss": 0.9}, delivered, "loss")
    assert not better_than({"energy": math.nan, "forces": 1.0}, delivered, "energy_and_forces")
    assert better_than({"energy": None, "forces": 49.0}, {"energy": None, "forces": 50.0}, "energy_and_forces")
    assert better_than({"forces": 1e9}, None, "forces")
    with pytest.raises(ValueError, match="energy_and_forces"):
        better_than({}, delivered, "best")


def test_stage_two_is_off_by_default(tmp_path):
    config = write_config(tmp_path, write_emt_data(tmp_path / "emt.xyz", n=10), n_train=6, n_val=4)
    assert load_config(config).training.stage_two_start is None


def _validation_errors(run, data) -> dict:
    """MAEs of run/best.ckpt on the run's validation structures, evaluated afresh."""
    structures = read_structures(data)
    val = [structures[int(i)] for i in load_split(run / "split.npz")["val"]]
    return evaluate_potential(load_potential(run / "best.ckpt"), val)


def test_a_harmful_stage_two_does_not_replace_the_stage_one_best(tmp_path):
    """Stage two at half the budget with the per-atom energy weighed 10 000x: the forces get
    worse (the energy takes over), and the run still delivers a model whose validation energy
    and forces are no worse than the best of stage one (before the fix it delivered the best
    of stage two by stage two's own loss: 1.2x the stage-one best's force error)."""
    data = write_emt_data(tmp_path / "emt.xyz", n=40)
    training = {"max_epochs": 24, "lr": 1e-2, "min_lr": 1e-3, "dtype": "float64", "ema_decay": 0.0,
                "stage_two_start": 0.5, "stage_two_energy_weight": 1e4, "checkpoint_every": None}
    config = write_config(tmp_path, data, training=training, n_train=24, n_val=16)
    lines = []
    train(load_config(config), log=lines.append)
    run = tmp_path / "run"
    switch = [line for line in lines if line.startswith("stage two after epoch")]
    assert switch, lines
    first_two = int(switch[0].split()[4].rstrip(":")) + 1
    rows = read_metrics_csv(run / "metrics.csv")
    stage_one = [r for r in rows if r["epoch"] < first_two]
    stage_two = [r for r in rows if r["epoch"] >= first_two]
    best_one = min(stage_one, key=lambda r: r["val_loss"])
    # the synthetic case is one where stage two hurts the forces
    assert stage_two[-1]["val_forces_mae_meV_per_A"] > 1.1 * best_one["val_forces_mae_meV_per_A"]
    delivered = _validation_errors(run, data)
    assert delivered["forces_mae_meV_per_A"] <= best_one["val_forces_mae_meV_per_A"] * (1 + 1e-6)
    assert delivered["energy_mae_meV_per_atom"] <= best_one["val_energy_mae_meV_per_atom"] * (1 + 1e-6)
    assert (run / "best_stage_one.ckpt").exists()
    assert [r["stage"] for r in rows] == [1.0] * len(stage_one) + [2.0] * len(stage_two)
    assert load_checkpoint(run / "last.ckpt")["stage"] == 2
    assert (run / "learning_curve.png").stat().st_size > 0
