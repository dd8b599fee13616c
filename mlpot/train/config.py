"""Training configuration: a YAML file read into typed dataclasses.

    cfg = load_config("ethanol.yaml", overrides=["training.max_epochs=1"])
    cfg.data.train      # absolute path (relative paths are resolved against the YAML's folder)
    cfg.model           # mlpot.model.config.ModelConfig
    cfg.training.lr     # 5e-4
    cfg.output          # absolute path of the run folder

Sections: ``data`` (DataConfig), ``model`` (ModelConfig), ``training`` (TrainingConfig)
and ``output`` (a folder). Unknown keys and values of the wrong type are refused with a
message naming the key. Overrides are ``section.key=value`` with the value parsed as YAML.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from mlpot.train.checkpoint import atomic_write_bytes
from mlpot.train.selection import RULES
from mlpot.model.config import ELEMENT_NETWORK, SYMMETRY_FUNCTIONS, ModelConfig


class ConfigError(ValueError):
    """The training configuration is invalid; the message names the key and the fix."""


@dataclass
class DataConfig:
    train: str = ""                       # store (.db) or any importable file (npz, extxyz, ...)
    n_train: Union[int, float] = 0.9      # count, or fraction of the file
    n_val: Union[int, float] = 0.1        # count, or fraction of the file
    n_test: Optional[Union[int, float]] = None  # default: the rest of the file
    val: Optional[str] = None             # separate validation file (then n_val is taken from it)
    test: Optional[str] = None            # test file, evaluated with the best model at the end
    split: Optional[str] = None           # existing split.npz to reuse
    seed: int = 0                         # seed of the random split
    format: Optional[str] = None          # importer format (md17, extxyz, db, ...); None guesses
    energy_unit: Optional[str] = None     # source units when the file does not say
    force_unit: Optional[str] = None
    length_unit: Optional[str] = None

    def __post_init__(self):
        if not self.train:
            raise ConfigError("data.train is required: a store (.db) or a data file (npz, extxyz)")


@dataclass
class TrainingConfig:
    batch_size: Union[int, str] = "auto"  # structures per optimizer step (global, all ranks); "auto":
                                          # about ATOMS_PER_BATCH atoms, 1 to 10 structures (auto_batch_size)
    max_epochs: int = 1000
    max_time: Optional[Union[float, str]] = None  # wall-clock budget: seconds, or "30m", "2h"
    checkpoint_every: Optional[Union[float, str]] = "10m"  # also save last.ckpt inside long epochs
    lr: float = 1e-3                      # Adam learning rate
    scheduler: str = "cosine"             # cosine | exponential | plateau | none; cosine: lr -> min_lr
                                          # over the budget (max_epochs or max_time, whichever ends
                                          # first), per step
    decay_rate: float = 0.96              # exponential: lr = lr0 * decay_rate ** (step / decay_steps)
    decay_steps: int = 100_000
    plateau_factor: float = 0.8           # plateau: lr *= factor after `plateau_patience` bad epochs
    plateau_patience: int = 25
    min_lr: float = 1e-5
    patience: Optional[Union[int, str]] = "auto"  # early stopping: epochs without a better val loss;
                                          # auto: off under cosine (the schedule is the budget and
                                          # best.ckpt keeps the best validation epoch), else 100
    ema_decay: float = 0.99               # exponential moving average of the weights; 0 = off
    energy_weight: float = 1.0            # rho in rho*(dE)^2 + mean |dF|^2 (dE in eV, see energy_loss)
    energy_loss: str = "per_atom"         # per_structure: dE = E - E_ref; per_atom: (E - E_ref) / N_atoms
    stage_two_start: Optional[float] = None  # fraction of the budget from which stage two's weights
                                          # apply (MACE's stage two, e.g. 0.75); None = off (measured:
                                          # no gain within CPU budgets, docs/training.md)
    stage_two_ramp: float = 0.1           # share of the budget over which the weights move to stage
                                          # two's (geometric); 0 = a step
    stage_two_select: str = "energy_and_forces"  # from stage two on, an epoch replaces best.ckpt only
                                          # if better than it on: energy_and_forces | forces | energy
                                          # | loss (stage one's loss)
    stage_two_energy_weight: Optional[float] = 100.0  # energy weight in stage two (None: energy_weight)
    stage_two_forces_weight: Optional[float] = None  # forces weight in stage two (default: forces_weight)
    forces_weight: float = 1.0            # on the mean squared force component (eV/Å)^2
    stress_weight: float = 1.0            # on the mean squared stress component (eV/Å^3)^2
    dipole_weight: float = 1.0            # on the mean squared dipole component (e·Å)^2
    max_grad_norm: Optional[float] = None  # gradient clipping; None = off
    seed: int = 0                         # initial weights and batch order
    dtype: str = "float32"                # float32 | float64
    device: str = "auto"                  # auto | cpu | cuda | cuda:N
    num_threads: Optional[int] = None     # torch CPU threads per process; None = torch default
    kernels: str = "auto"                 # SchNet convolution: auto | fused | reference
    ensemble: int = 1                     # committee: train this many models (seeds seed, seed+1, ...)
                                          # into output/member_K (mlpot.train.committee)
    bootstrap: bool = False               # committee members train on bootstrap resamples of the
                                          # training set (drawn with the member's seed)
    init_from: Optional[str] = None       # warm start: initial weights (EMA) and statistics from
                                          # this checkpoint (same model settings and elements)

    @property
    def early_stopping_patience(self) -> Optional[int]:
        """Epochs without a better validation loss before training stops (None: never)."""
        if self.patience == "auto":
            return None if self.scheduler == "cosine" else 100
        return self.patience

    def __post_init__(self):
        checks = [
            (self.batch_size == "auto" or (isinstance(self.batch_size, int) and self.batch_size >= 1),
             f"training.batch_size must be an int >= 1 or \"auto\", got {self.batch_size!r}"),
            (self.max_epochs >= 0, "training.max_epochs must be >= 0"),
            (self.lr > 0, "training.lr must be positive"),
            (self.scheduler in ("cosine", "exponential", "plateau", "none"),
             "training.scheduler must be cosine, exponential, plateau or none"),
            (self.energy_loss in ("per_structure", "per_atom"),
             "training.energy_loss must be per_structure or per_atom"),
            (self.stage_two_start is None or 0 < self.stage_two_start < 1,
             "training.stage_two_start must be a fraction of the budget in (0, 1), or null"),
            (all(w is None or w >= 0 for w in (self.stage_two_energy_weight, self.stage_two_forces_weight)),
             "stage-two loss weights must be >= 0"),
            (0 <= self.stage_two_ramp <= 1, "training.stage_two_ramp must be a fraction of the budget in [0, 1]"),
            (self.stage_two_select in RULES,
             f"training.stage_two_select must be one of {', '.join(RULES)}"),
            (0 < self.decay_rate <= 1, "training.decay_rate must be in (0, 1]"),
            (self.decay_steps >= 1, "training.decay_steps must be >= 1"),
            (0 < self.plateau_factor < 1, "training.plateau_factor must be in (0, 1)"),
            (0 <= self.ema_decay < 1, "training.ema_decay must be in [0, 1)"),
            (self.patience is None or self.patience == "auto"
             or (isinstance(self.patience, int) and not isinstance(self.patience, bool) and self.patience >= 1),
             "training.patience must be an integer >= 1, auto or null"),
            (min(self.energy_weight, self.forces_weight, self.stress_weight, self.dipole_weight) >= 0,
             "loss weights must be >= 0"),
            (self.energy_weight + self.forces_weight > 0,
             "training.energy_weight and forces_weight cannot both be 0"),
            (self.dtype in ("float32", "float64"), "training.dtype must be float32 or float64"),
            (self.ensemble >= 1, "training.ensemble must be >= 1 (the number of committee members)"),
            (self.kernels in ("auto", "fused", "reference"), "training.kernels must be auto, fused or reference"),
            (self.device == "auto" or re.fullmatch(r"cpu|cuda(:\d+)?", self.device) is not None,
             "training.device must be auto, cpu, cuda or cuda:N"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        self.max_time = parse_duration(self.max_time)
        if self.checkpoint_every not in (None, 0, 0.0, "0"):
            self.checkpoint_every = parse_duration(self.checkpoint_every, "training.checkpoint_every")
        elif self.checkpoint_every is not None:
            self.checkpoint_every = 0.0


@dataclass
class TrainConfig:
    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: str = "runs/run"

    def to_dict(self) -> dict:
        """Plain nested dict (YAML/JSON/checkpoint friendly)."""
        return dataclasses.asdict(self)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "training": TrainingConfig}

# training.batch_size "auto": batches of about this many atoms. Ten structures of a small molecule
# (rMD17, QM9) as before; two 192-atom water cells instead of ten. With ten, the 20-minute water
# model had 86.9 meV/Å and its MD left the liquid's structure within 18-19 ps; with two, 69.9 meV/Å
# (2026-12-07, docs/benchmarks.md): a large cell holds many force labels, and more steps in the
# same time teach more than larger batches.
ATOMS_PER_BATCH = 400
MAX_AUTO_BATCH = 10


def auto_batch_size(mean_atoms: float) -> int:
    """Structures per batch for "auto": round(ATOMS_PER_BATCH / mean atoms per structure), 1 to
    MAX_AUTO_BATCH (ethanol 9 atoms: 10; Si cells of 62: 6; water cells of 192: 2)."""
    return max(1, min(MAX_AUTO_BATCH, round(ATOMS_PER_BATCH / max(float(mean_atoms), 1.0))))


def parse_duration(value, name: str = "training.max_time") -> Optional[float]:
    """Seconds from a number or a string like "90", "30s", "45m", "1.5h", "2d"; None stays None."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9.]+)\s*([smhd]?)\s*", str(value))
        if match is None:
            raise ConfigError(f"{name}={value!r}: use seconds or a number with s, m, h or d")
        seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")
    return seconds


def _check_type(section: str, name: str, value, annotation) -> Any:
    """`value` converted to the field's type, or ConfigError."""
    origin = typing.get_origin(annotation)
    options = typing.get_args(annotation) if origin is Union else (annotation,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{section}.{name} cannot be null")
    for option in options:
        base = typing.get_origin(option) or option
        if base is bool and isinstance(value, bool):
            return value
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if base is str and isinstance(value, str):
            return value
        if base is list and isinstance(value, list):
            return value
        if base not in (bool, int, float, str, list, type(None)):
            return value  # a type this checker does not know: the dataclass validates it
    if float in options and isinstance(value, str):
        try:  # YAML 1.1 reads "5e-4" as a string
            return float(value)
        except ValueError:
            pass
    names = " or ".join("null" if o is type(None) else getattr(typing.get_origin(o) or o, "__name__", str(o))
                        for o in options)
    raise ConfigError(f"{section}.{name}={value!r} has the wrong type; expected {names}")


def _build_section(section: str, cls, values) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"section {section!r} must be a mapping of keys to values, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(section + '.' + str(k) for k in unknown)}; "
                          f"known keys in {section}: {', '.join(sorted(known))}")
    typed = {k: _check_type(section, k, v, hints[k]) for k, v in values.items()}
    try:
        return cls(**typed)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{section}: {exc}") from None


def apply_overrides(raw: dict, overrides) -> dict:
    """Apply "section.key=value" strings (value parsed as YAML) to a nested dict copy."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for item in overrides or ():
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like section.key=value")
        value = yaml.safe_load(text) if text.strip() else None
        parts = key.strip().split(".")
        if len(parts) == 1:
            raw[parts[0]] = value
        elif len(parts) == 2:
            section = raw.get(parts[0])
            if section is None:
                section = raw[parts[0]] = {}
            if not isinstance(section, dict):
                raise ConfigError(f"override {item!r}: {parts[0]} is not a section")
            section[parts[1]] = value
        else:
            raise ConfigError(f"override {item!r}: use section.key=value (one dot)")
    return raw


def _resolve(path: Optional[str], base: Path) -> Optional[str]:
    if path is None:
        return None
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def config_from_dict(raw: dict, base_dir: str | Path = ".") -> TrainConfig:
    """TrainConfig from a nested dict; relative paths are resolved against `base_dir`."""
    if not isinstance(raw, dict):
        raise ConfigError("a training config must be a mapping with sections data, model, training, output")
    unknown = sorted(set(raw) - set(SECTIONS) - {"output"})
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {', '.join(map(str, unknown))}; "
                          f"known: data, model, training, output")
    if "data" not in raw:
        raise ConfigError("the config needs a data: section with at least data.train")
    base = Path(base_dir).resolve()
    data = _build_section("data", DataConfig, raw.get("data"))
    for name in ("train", "val", "test", "split"):
        setattr(data, name, _resolve(getattr(data, name), base))
    model = _build_section("model", ModelConfig, raw.get("model"))
    if model.n_hidden is None and model.representation in SYMMETRY_FUNCTIONS:
        # wider element networks than the pyramid; written into the run's config and checkpoints
        # (which keep None for the pyramid of earlier runs)
        model.n_hidden = list(ELEMENT_NETWORK)
    training = _build_section("training", TrainingConfig, raw.get("training"))
    training.init_from = _resolve(training.init_from, base)
    output = raw.get("output", "runs/run")
    if not isinstance(output, str) or not output:
        raise ConfigError(f"output must be a folder path, got {output!r}")
    return TrainConfig(data=data, model=model, training=training, output=_resolve(output, base))


def read_yaml_config(path: str | Path, overrides=None) -> dict:
    """The nested dict of a YAML config file with `overrides` ("section.key=value") applied."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return apply_overrides(raw, overrides)


def load_config(path: str | Path, overrides=None) -> TrainConfig:
    """Read a YAML training config; `overrides` are "section.key=value" strings."""
    return config_from_dict(read_yaml_config(path, overrides), base_dir=Path(path).parent)


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the config (absolute paths) as YAML, atomically; it loads back to an equal TrainConfig."""
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True)
    atomic_write_bytes(Path(path), lambda fh: fh.write(text.encode()))
