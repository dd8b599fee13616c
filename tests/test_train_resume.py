"""kill -9 while training, then --resume: the run continues (epoch counter, optimizer,
EMA, split) and ends where an uninterrupted run ends."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mlpot.train import load_config, train
from mlpot.train.checkpoint import load_checkpoint
from mlpot.train.metrics import read_metrics_csv
from test_train_fixtures import write_config, write_emt_data

# last.ckpt after every batch; a fixed lr and loss: the resume below changes max_epochs, which
# budget-tied schedules would follow (their resume: test_train_schedule.py)
TRAINING = {"max_epochs": 500, "batch_size": 8, "checkpoint_every": 0, "scheduler": "none",
            "stage_two_start": None}


def _kill_during_training(config, run, min_epoch=3, timeout=90.0):
    """Start `mlpot train` in a subprocess, SIGKILL it once last.ckpt holds >= min_epoch."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "mlpot", "train", str(config), "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (run / "metrics.csv").exists() and len(read_metrics_csv(run / "metrics.csv")) >= min_epoch:
                time.sleep(np.random.default_rng().uniform(0.0, 0.3))   # somewhere in an epoch or a write
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read()}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_kill_and_resume_continues_the_same_run(tmp_path):
    data = write_emt_data(tmp_path / "emt.xyz", n=40)
    config = write_config(tmp_path / "killed", data, n_train=24, n_val=8, training=TRAINING)
    run = tmp_path / "killed" / "run"
    _kill_during_training(config, run)

    before = load_checkpoint(run / "last.ckpt")       # intact whenever the kill came
    k = before["epoch"]                               # (+ before["batch_in_epoch"] batches)
    assert 3 <= k < TRAINING["max_epochs"]
    target = k + 2
    summary = train(load_config(config, [f"training.max_epochs={target}"]), resume=True, quiet=True)
    after = load_checkpoint(run / "last.ckpt")
    assert summary["epochs"] == after["epoch"] == target
    steps_per_epoch = 3                               # 24 structures / batch 8
    assert after["step"] == target * steps_per_epoch
    adam_steps = {float(s["step"]) for s in after["optimizer"]["state"].values()}
    assert adam_steps == {float(target * steps_per_epoch)}   # optimizer state carried over, not reset
    assert after["history"][:k] == before["history"]
    assert [r["epoch"] for r in read_metrics_csv(run / "metrics.csv")] == list(range(1, target + 1))
    for part in ("train", "val"):
        assert torch.equal(after["split"][part], before["split"][part])

    # the same run without interruption ends with the same weights and losses
    reference = write_config(tmp_path / "straight", data, n_train=24, n_val=8,
                             training={**TRAINING, "max_epochs": target})
    straight = train(load_config(reference), quiet=True)
    ref = load_checkpoint(tmp_path / "straight" / "run" / "last.ckpt")
    assert straight["last"]["val_loss"] == pytest.approx(summary["last"]["val_loss"], rel=1e-5)
    for key, value in ref["model_ema"].items():
        torch.testing.assert_close(after["model_ema"][key], value, rtol=1e-4, atol=1e-6)


def test_resume_without_checkpoint_starts_and_keeps_the_split(tmp_path):
    from mlpot.data.splits import save_split

    data = write_emt_data(tmp_path / "emt.xyz", n=20)
    config = write_config(tmp_path, data, n_train=12, n_val=4, training={"max_epochs": 1})
    split = {"train": np.arange(4, 16), "val": np.arange(16, 20), "test": np.arange(4),
             "n_total": np.int64(20), "seed": np.int64(7)}
    save_split(split, tmp_path / "run" / "split.npz")     # killed before the first checkpoint
    train(load_config(config), resume=True, quiet=True)
    state = load_checkpoint(tmp_path / "run" / "last.ckpt")
    assert state["split"]["train"].tolist() == list(range(4, 16))


def test_resume_inside_an_epoch_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    import mlpot.train.trainer as trainer

    data = write_emt_data(tmp_path / "emt.xyz", n=32)
    training = {"max_epochs": 3, "batch_size": 4, "checkpoint_every": 0}     # 6 batches per epoch
    crashed = write_config(tmp_path / "crashed", data, n_train=24, n_val=8, training=training)
    real_loss, calls = trainer.weighted_loss, []

    def crash_at_epoch_2_batch_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 9:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(trainer, "weighted_loss", crash_at_epoch_2_batch_3)
    with pytest.raises(KeyboardInterrupt):
        train(load_config(crashed), quiet=True)
    monkeypatch.setattr(trainer, "weighted_loss", real_loss)
    state = load_checkpoint(tmp_path / "crashed" / "run" / "last.ckpt")
    assert (state["epoch"], state["batch_in_epoch"], state["step"]) == (1, 2, 8)
    resumed = train(load_config(crashed), resume=True, quiet=True)

    straight = write_config(tmp_path / "straight", data, n_train=24, n_val=8, training=training)
    reference = train(load_config(straight), quiet=True)
    for key in ("train_loss", "val_loss", "val_forces_mae_meV_per_A"):
        assert resumed["last"][key] == pytest.approx(reference["last"][key], rel=1e-5), key
    a = load_checkpoint(tmp_path / "crashed" / "run" / "last.ckpt")
    b = load_checkpoint(tmp_path / "straight" / "run" / "last.ckpt")
    assert a["step"] == b["step"] == 18 and a["batch_in_epoch"] == 0
    for key, value in b["model_ema"].items():
        torch.testing.assert_close(a["model_ema"][key], value, rtol=1e-4, atol=1e-6)
