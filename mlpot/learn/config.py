"""`mlpot learn` configuration: a training YAML (model, training) plus a `learn:` section.

    learn:
      seed_data: seed.xyz          # starting structures (labelled, or labelled by the reference)
      test: test.db                # independent test set labelled by the same reference (optional)
      reference: GFN2-xTB          # tblite method (GFN2-xTB, GFN1-xTB), or "module:function" -> ASE calculator
      temperatures: [300, 600, 900]
      trust_lo: 0.05               # eV/Å: frames whose max force deviation lies in [lo, hi] are labelled
      trust_hi: 0.25
    model: {representation: schnet, cutoff: 5.0}
    training: {ensemble: 4, max_time: 2m}
    output: runs/learn

data: is not given: the data set is the run's own store (output/data.db), split 90/10 into
training and validation at every iteration.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import ase.io

from mlpot.data.raw import DataError
from mlpot.train.config import (ConfigError, TrainConfig, _build_section, _resolve, config_from_dict,
                                parse_duration, read_yaml_config)
from mlpot.train.data import read_structures

STORE_NAME = "data.db"
DEFAULT_COMMITTEE = 4


@dataclass
class LearnSettings:
    seed_data: str = ""                   # starting structures (any file mlpot reads)
    start: Optional[str] = None           # MD starting structures (default: the seed's first ones)
    test: Optional[str] = None            # labelled test set (same reference), never trained on
    reference: str = "GFN2-xTB"           # tblite method, or "package.module:function" returning a calculator
    temperatures: list = field(default_factory=lambda: [300.0, 600.0, 900.0])   # K, one MD run each
    md_steps: int = 400                   # MD steps per temperature and iteration
    timestep: float = 0.5                 # fs
    friction: float = 0.02                # 1/fs (Langevin)
    sample_every: int = 10                # MD steps between explored frames
    normal_modes: int = 0                 # normal-mode samples per temperature and iteration, around the
                                          # committee's own minimum with its own Hessian (0: MD only)
    trust_lo: float = 0.05                # eV/Å, max force deviation from which a frame is a candidate
    trust_hi: float = 0.25                # eV/Å, above it a frame is too far out to label (DP-GEN's rule)
    abort: float = 1.0                    # eV/Å, an MD run stops at a frame beyond this deviation
    max_new: int = 30                     # frames labelled per iteration at most
    max_iterations: int = 8
    converged_fraction: float = 0.02      # stop when fewer explored frames than this exceed trust_lo
    max_time: Optional[Union[float, str]] = None   # wall-clock budget of the whole loop ("2h")
    engine: str = "ase"                   # ase (molecules and cells) | lammps (periodic cells, the plugin's
                                          # committee deviation; mlpot.learn.explore_lammps)
    seed: int = 0
    threads: Optional[int] = None         # torch threads for MD (None: torch's default)

    def __post_init__(self):
        checks = [
            (bool(self.seed_data), "learn.seed_data is required: the structures to start from"),
            (len(self.temperatures) >= 1 and all(float(t) > 0 for t in self.temperatures),
             "learn.temperatures must be a list of temperatures > 0 K"),
            (self.md_steps >= 1 and self.sample_every >= 1, "learn.md_steps and learn.sample_every must be >= 1"),
            (self.md_steps >= self.sample_every,
             f"learn.md_steps ({self.md_steps}) < learn.sample_every ({self.sample_every}): an MD run would give "
             "no frame; raise md_steps or lower sample_every"),
            (self.normal_modes >= 0, "learn.normal_modes must be >= 0 (samples per temperature; 0: none)"),
            (self.timestep > 0 and self.friction > 0, "learn.timestep and learn.friction must be > 0"),
            (0 <= self.trust_lo < self.trust_hi <= self.abort,
             "need 0 <= learn.trust_lo < learn.trust_hi <= learn.abort (eV/Å)"),
            (self.max_new >= 1 and self.max_iterations >= 1, "learn.max_new and learn.max_iterations must be >= 1"),
            (0 <= self.converged_fraction < 1, "learn.converged_fraction must be in [0, 1)"),
            (self.engine in ("ase", "lammps"), "learn.engine must be ase or lammps"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        self.temperatures = [float(t) for t in self.temperatures]
        self.max_time = parse_duration(self.max_time, "learn.max_time")

    def start_structures(self) -> list:
        """The structures the MD runs start from: learn.start, or the first seed structures (one per
        temperature)."""
        if self.start:
            return read_any(self.start)
        return read_any(self.seed_data)[:max(1, len(self.temperatures))]

    def require_periodic_starts(self) -> None:
        """learn.engine lammps explores periodic cells only (LAMMPS data files are boxes)."""
        for n, atoms in enumerate(self.start_structures()):
            if not atoms.pbc.all():
                raise ConfigError(f"learn.engine lammps explores periodic cells, but starting structure {n} of "
                                  f"{self.start or self.seed_data} ({atoms.get_chemical_formula()}) has pbc = "
                                  f"{atoms.pbc.tolist()}; use learn.engine ase for molecules and slabs")


@dataclass
class LearnConfig:
    learn: LearnSettings
    train: TrainConfig           # data.train is output/data.db; output is set per iteration
    output: str

    @property
    def store(self) -> Path:
        return Path(self.output) / STORE_NAME

    def to_dict(self) -> dict:
        return {"learn": dataclasses.asdict(self.learn), "train": self.train.to_dict(), "output": self.output}


def learn_config_from_dict(raw: dict, base_dir: str | Path = ".") -> LearnConfig:
    if not isinstance(raw, dict) or "learn" not in raw:
        raise ConfigError("an mlpot learn config needs a learn: section (seed_data, reference, ...)")
    if "data" in raw:
        raise ConfigError("an mlpot learn config has no data: section; its data set is the run's own store "
                          "(seed structures in learn.seed_data)")
    base = Path(base_dir).resolve()
    learn = _build_section("learn", LearnSettings, raw["learn"])
    for name in ("seed_data", "start", "test"):
        setattr(learn, name, _resolve(getattr(learn, name), base))
    if learn.engine == "lammps":
        learn.require_periodic_starts()
    output = _resolve(raw.get("output", "runs/learn"), base)
    rest = {k: v for k, v in raw.items() if k not in ("learn", "output")}
    training = dict(rest.get("training") or {})
    if training.get("ensemble", DEFAULT_COMMITTEE) < 2:
        raise ConfigError("mlpot learn needs a committee: training.ensemble >= 2 (default 4)")
    rest["training"] = {"ensemble": DEFAULT_COMMITTEE, **training}
    train = config_from_dict({**rest, "data": {"train": str(Path(output) / STORE_NAME), "n_train": 0.9,
                                               "n_val": 0.1, "n_test": 0}, "output": output}, base)
    return LearnConfig(learn=learn, train=train, output=output)


def read_any(path) -> list:
    """Structures of a file: labelled (in eV/Å, any file `mlpot import` reads, units converted) or,
    when it has no labels, unlabelled as ASE reads it."""
    try:
        return read_structures(path)
    except DataError:
        return ase.io.read(str(path), index=":")


def load_learn_config(path: str | Path, overrides=None) -> LearnConfig:
    """Read an `mlpot learn` YAML; overrides are "section.key=value" strings (learn., training., model.)."""
    return learn_config_from_dict(read_yaml_config(path, overrides), base_dir=Path(path).parent)
