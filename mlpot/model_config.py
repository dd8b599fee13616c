"""The `model:` section of a training config and the function that builds a Potential from it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from mlpot.heads import Atomwise
from mlpot.potential import Potential

REPRESENTATIONS = ("schnet",)


@dataclass
class ModelConfig:
    representation: str = "schnet"      # schnet | wacsf | acsf
    cutoff: float = 5.0                 # Å
    # SchNet
    n_atom_basis: int = 128
    n_filters: int = 128
    n_interactions: int = 3
    n_rbf: int = 20
    # output network
    n_hidden: Optional[List[int]] = None  # hidden widths of the output MLP; default: halving pyramid
    n_layers: int = 2
    dipole: bool = False                # also predict the dipole moment from latent charges

    def __post_init__(self):
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"unknown representation {self.representation!r}; choose one of "
                             f"{', '.join(REPRESENTATIONS)}")
        if not self.cutoff > 0:
            raise ValueError(f"model.cutoff must be positive (Å), got {self.cutoff}")


def build_representation(cfg: ModelConfig):
    if cfg.representation == "schnet":
        from mlpot.representations.schnet import SchNet
        return SchNet(n_atom_basis=cfg.n_atom_basis, n_filters=cfg.n_filters,
                      n_interactions=cfg.n_interactions, n_rbf=cfg.n_rbf, cutoff=cfg.cutoff)
    raise ValueError(f"unknown representation {cfg.representation!r}")


def build_potential(cfg: ModelConfig, species: List[int]) -> Potential:
    """A Potential for the elements `species` (atomic numbers); statistics not yet fitted."""
    representation = build_representation(cfg)
    head = Atomwise(representation.n_features, 1, cfg.n_hidden, cfg.n_layers)
    dipole_head = None
    if cfg.dipole:
        from mlpot.heads import DipoleMoment
        dipole_head = DipoleMoment(representation.n_features, cfg.n_hidden, cfg.n_layers)
    return Potential(representation, head, species, dipole_head)
