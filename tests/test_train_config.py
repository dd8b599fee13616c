"""Training config: YAML -> dataclasses, path resolution, overrides, clear errors."""
from pathlib import Path

import pytest

from mlpot.train.config import ConfigError, load_config, parse_duration, save_config

ISSUE_CONFIG = """\
data:
  train: ../shared/data/rmd17/rmd17_ethanol_train_01.npz
  n_train: 950
  n_val: 50
model:
  representation: schnet      # or wacsf, acsf
  cutoff: 5.0
  n_atom_basis: 128
  n_filters: 128
  n_interactions: 3
  n_rbf: 20
training:
  batch_size: 32
  max_epochs: 3
output: runs/ethanol_schnet
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_issue_config_reads_with_paths_relative_to_the_file(tmp_path):
    cfg = load_config(write(tmp_path, ISSUE_CONFIG))
    assert cfg.data.train == str((tmp_path / "shared/data/rmd17/rmd17_ethanol_train_01.npz").resolve())
    assert cfg.output == str((tmp_path / "cfg/runs/ethanol_schnet").resolve())
    assert (cfg.data.n_train, cfg.data.n_val) == (950, 50)
    assert (cfg.model.n_atom_basis, cfg.model.n_rbf, cfg.model.cutoff) == (128, 20, 5.0)
    assert (cfg.training.batch_size, cfg.training.max_epochs) == (32, 3)
    assert cfg.training.ema_decay == 0.99 and cfg.training.energy_weight == 1.0
    assert (cfg.training.scheduler, cfg.training.energy_loss, cfg.training.stage_two_start) == \
        ("cosine", "per_atom", None)


def test_symmetry_function_configs_get_wide_element_networks(tmp_path):
    """A training config of wACSF / ACSF without model.n_hidden gets 128-128 element networks
    (the pyramid of a bare ModelConfig is kept for checkpoints that stored None)."""
    config = tmp_path / "w.yaml"
    config.write_text("data: {train: x.npz}\nmodel: {representation: wacsf}\n")
    assert load_config(config).model.n_hidden == [128, 128]
    assert load_config(config, ["model.n_hidden=[32]"]).model.n_hidden == [32]
    assert load_config(config, ["model.representation=schnet"]).model.n_hidden is None


def test_overrides_are_typed_and_win(tmp_path):
    cfg = load_config(write(tmp_path, ISSUE_CONFIG),
                      ["training.max_epochs=1", "data.n_train=64", "training.lr=1e-3",
                       "training.max_time=2h", "output=elsewhere"])
    assert cfg.training.max_epochs == 1 and cfg.data.n_train == 64
    assert cfg.training.lr == pytest.approx(1e-3)
    assert cfg.training.max_time == 7200.0
    assert cfg.output.endswith("cfg/elsewhere")


@pytest.mark.parametrize("override, words", [
    ("training.max_epoch=3", ["training.max_epoch", "max_epochs"]),      # typo names the key
    ("training.batch_size=abc", ["training.batch_size", "int"]),
    ("training.scheduler=linear", ["scheduler", "cosine"]),
    ("model.representation=painn", ["painn"]),
    ("training.ema_decay=1.5", ["ema_decay"]),
    ("training.max_time=soon", ["max_time"]),
    ("trainig.lr=1", ["trainig"]),
    ("training", ["section.key=value"]),
])
def test_bad_values_give_errors_naming_the_key(tmp_path, override, words):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, ISSUE_CONFIG), [override])
    for word in words:
        assert word in str(info.value)


def test_missing_data_train_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="data.train"):
        load_config(write(tmp_path, "model:\n  cutoff: 4.0\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_saved_config_loads_back_equal(tmp_path):
    cfg = load_config(write(tmp_path, ISSUE_CONFIG), ["training.max_time=90"])
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == cfg


def test_parse_duration():
    assert parse_duration("45m") == 2700 and parse_duration(10) == 10.0 and parse_duration(None) is None
    with pytest.raises(ConfigError):
        parse_duration(-1)
