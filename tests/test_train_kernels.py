"""training.kernels: SchNet trained with the fused C++ convolution (hand-written first and
second derivatives) follows the same trajectory as with the plain-PyTorch reference kernels."""
import pytest
import torch

from mlpot import ops
from mlpot.kernels.registry import kernels_of
from mlpot.train import load_config, train
from mlpot.train.checkpoint import load_checkpoint
from mlpot.train import distributed as dist
from mlpot.train.config import ConfigError
from mlpot.train.trainer import Trainer
from test_train_fixtures import write_config, write_emt_data


def final_weights(folder, data, kernels):
    config = write_config(folder / kernels, data, training={"max_epochs": 2, "dtype": "float64", "kernels": kernels,
                                                           "ema_decay": 0.0, "checkpoint_every": None})
    trainer = Trainer(load_config(config), dist.setup("cpu"), quiet=True)
    assert trainer.kernels == kernels
    assert kernels_of(trainer.potential) == kernels and kernels_of(trainer.ema.model) == kernels
    summary = train(load_config(config), quiet=True)
    return load_checkpoint(folder / kernels / "run" / "last.ckpt")["model"], summary


@pytest.mark.skipif(not ops.available(), reason="fused kernels not available")
def test_fused_and_reference_training_give_the_same_weights(tmp_path):
    data = write_emt_data(tmp_path / "emt.xyz", n=60)
    fused, fused_summary = final_weights(tmp_path, data, "fused")
    reference, reference_summary = final_weights(tmp_path, data, "reference")
    assert fused.keys() == reference.keys()
    for name in fused:
        torch.testing.assert_close(fused[name], reference[name], rtol=1e-9, atol=1e-9, msg=name)
    assert fused_summary["best_val_loss"] == pytest.approx(reference_summary["best_val_loss"], rel=1e-9)


def test_unknown_kernels_are_refused(tmp_path):
    data = write_emt_data(tmp_path / "emt.xyz", n=10)
    config = write_config(tmp_path, data, training={"kernels": "fast"})
    with pytest.raises(ConfigError, match="training.kernels must be auto, fused or reference"):
        load_config(config)
