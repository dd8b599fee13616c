"""Training: config (YAML -> dataclasses), losses, EMA, checkpoints, data-parallel trainer.

    from mlpot.train import load_config, train
    result = train(load_config("ethanol.yaml"))

    from mlpot.train.checkpoint import load_potential
    potential = load_potential("runs/ethanol_schnet/best.ckpt")   # EMA weights, eval mode
"""
from mlpot.train.config import ConfigError, TrainConfig, load_config
from mlpot.train.trainer import train


__all__ = ["ConfigError", "TrainConfig", "load_config", "train"]
