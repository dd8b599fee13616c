"""Data-parallel training: 2 gloo processes (torchrun) match 1 process on the same global batch."""
import os
import subprocess
import sys

import pytest
import torch

from mlpot.train import load_config, train
from mlpot.train.checkpoint import load_checkpoint
from mlpot.train.metrics import read_metrics_csv
from test_train_fixtures import write_config, write_emt_data

# batch 7 over 2 ranks: shards of 4 and 3 structures with different atom counts
TRAINING = {"max_epochs": 2, "batch_size": 7, "dtype": "float64", "device": "cpu"}


def _torchrun(args: list[str], cwd=None) -> subprocess.CompletedProcess:
    """2 processes under torchrun. The limit guards against a hang only: a run takes ~8 s alone
    and 20-45 s on 2 cores shared with 3 busy processes, so 120 s was too close under load."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_two_gloo_processes_match_one(tmp_path):
    data = write_emt_data(tmp_path / "emt.xyz", n=40)
    single = write_config(tmp_path / "one", data, n_train=30, n_val=10, training=TRAINING)
    double = write_config(tmp_path / "two", data, n_train=30, n_val=10, training=TRAINING)
    train(load_config(single), quiet=True)

    done = _torchrun(["-m", "mlpot", "train", str(double), "--quiet"])
    assert done.returncode == 0, done.stderr[-3000:]

    one = read_metrics_csv(tmp_path / "one" / "run" / "metrics.csv")
    two = read_metrics_csv(tmp_path / "two" / "run" / "metrics.csv")
    assert len(one) == len(two) == 2
    for a, b in zip(one, two):
        for key in ("train_loss", "val_loss", "val_energy_mae_meV", "val_forces_mae_meV_per_A"):
            assert b[key] == pytest.approx(a[key], rel=1e-9), key
    s1 = load_checkpoint(tmp_path / "one" / "run" / "last.ckpt")
    s2 = load_checkpoint(tmp_path / "two" / "run" / "last.ckpt")
    assert s1["step"] == s2["step"] == 2 * 5           # ceil(30 / 7) global steps per epoch
    for key, value in s1["model"].items():
        torch.testing.assert_close(s2["model"][key], value, rtol=1e-9, atol=1e-12)


GLOO_THREADS_AFTER_TEARDOWN = """
import os, torch
from mlpot.train import distributed as dist
ctx = dist.setup("cpu")
torch.optim.Adam([torch.nn.Parameter(torch.ones(3))])   # imports torch._dynamo, as training does
vec = torch.ones(3)
dist.all_reduce_sum(vec, ctx)
dist.teardown(ctx)
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
with open(f"threads_{ctx.rank}.txt", "w") as out:   # one file per rank: their stdout interleaves
    out.write(" ".join(sorted(n for n in names if "gloo" in n)))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_teardown_stops_the_gloo_threads(tmp_path):
    """teardown frees the process group, so gloo's worker threads do not run on into interpreter
    finalization, where dropping a finished all_reduce's tensor aborts the process."""
    script = tmp_path / "teardown.py"
    script.write_text(GLOO_THREADS_AFTER_TEARDOWN)
    done = _torchrun([str(script)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):
        assert (tmp_path / f"threads_{rank}.txt").read_text() == "", f"rank {rank}: gloo threads left"


def test_committee_trains_data_parallel(tmp_path):
    """training.ensemble under torchrun: each member in the one process group, as one process."""
    data = write_emt_data(tmp_path / "emt.xyz", n=30)
    training = {**TRAINING, "max_epochs": 1, "ensemble": 2}
    single = write_config(tmp_path / "one", data, n_train=21, n_val=9, training=training)
    double = write_config(tmp_path / "two", data, n_train=21, n_val=9, training=training)
    train(load_config(single), quiet=True)
    done = _torchrun(["-m", "mlpot", "train", str(double), "--quiet"])
    assert done.returncode == 0, done.stderr[-3000:]
    for member in ("member_0", "member_1"):
        s1 = load_checkpoint(tmp_path / "one" / "run" / member / "last.ckpt")
        s2 = load_checkpoint(tmp_path / "two" / "run" / member / "last.ckpt")
        for key, value in s1["model"].items():
            torch.testing.assert_close(s2["model"][key], value, rtol=1e-9, atol=1e-12)
