"""The `model:` section of a training config and the function that builds a Potential from it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from mlpot.model.heads import Atomwise, DipoleMoment, ElementalAtomwise, ElementalDipoleMoment
from mlpot.model.potential import Potential
from mlpot.model.nn.pair_repulsion import DEFAULT_STRENGTH
from mlpot.model.representations.schnet import SchNet
from mlpot.model.representations.wacsf import ACSF, WACSF

REPRESENTATIONS = ("schnet", "wacsf", "acsf")
SYMMETRY_FUNCTIONS = ("wacsf", "acsf")  # Behler–Parrinello: one output network per element
ELEMENT_NETWORK = [128, 128]            # default hidden widths of those networks


@dataclass
class ModelConfig:
    representation: str = "schnet"      # schnet | wacsf | acsf
    cutoff: float = 5.0                 # Å
    # SchNet
    n_atom_basis: int = 128
    n_filters: int = 128
    n_interactions: int = 3
    n_rbf: int = 20
    # wACSF / ACSF (symmetry functions, mlpot.model.representations.wacsf): SchNetPack's 22 radial
    # functions, more angular ones (6 widths x 4 zetas x lambda = ±1; SchNetPack has 5 x 1 x 2)
    n_radial: int = 22                  # radial G2 per neighbour channel
    n_angular: int = 6                  # angular Gaussian widths per (zeta, lambda = ±1)
    zetas: List[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0])
    # output network
    n_hidden: Optional[List[int]] = None  # hidden widths of the output MLP; None: halving pyramid
                                          # (a training config fills in ELEMENT_NETWORK for wACSF / ACSF)
    n_layers: int = 2
    dipole: bool = False                # also predict the dipole moment from latent charges
    # pair repulsion below the training data's shortest contact of each element pair (eV; 0: none;
    # mlpot.model.nn.pair_repulsion): zero on the training data, a wall where the network never saw atoms
    repulsion: float = DEFAULT_STRENGTH   # 100 eV (10 until 2026-12-07)

    def __post_init__(self):
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"unknown representation {self.representation!r}; choose one of "
                             f"{', '.join(REPRESENTATIONS)}")
        if not float(self.repulsion) >= 0:
            raise ValueError(f"model.repulsion is the strength of the short-range pair repulsion in eV, >= 0 "
                             f"(0 switches it off), got {self.repulsion}")
        if not self.cutoff > 0:
            raise ValueError(f"model.cutoff must be positive (Å), got {self.cutoff}")
        if self.representation == "schnet" and (self.n_interactions < 1 or self.n_atom_basis < 1
                                                or self.n_filters < 1 or self.n_rbf < 2):
            raise ValueError("model.n_interactions, n_atom_basis and n_filters must be >= 1 and n_rbf >= 2 "
                             f"(a SchNet without interactions does not see the geometry), got "
                             f"{self.n_interactions}, {self.n_atom_basis}, {self.n_filters}, {self.n_rbf}")
        if self.representation in SYMMETRY_FUNCTIONS:
            if self.n_radial < 2 or self.n_angular < 0:
                raise ValueError(f"model.n_radial must be >= 2 and model.n_angular >= 0, got "
                                 f"{self.n_radial} and {self.n_angular}")
            if self.n_angular > 0 and (not self.zetas or any(float(z) < 1 for z in self.zetas)):
                raise ValueError(f"model.zetas must be a non-empty list of exponents >= 1, got {self.zetas}")


def build_representation(cfg: ModelConfig, species: Optional[List[int]] = None):
    """The representation named by cfg; ACSF needs `species` (atomic numbers)."""
    if cfg.representation == "schnet":
        return SchNet(n_atom_basis=cfg.n_atom_basis, n_filters=cfg.n_filters,
                      n_interactions=cfg.n_interactions, n_rbf=cfg.n_rbf, cutoff=cfg.cutoff)
    if cfg.representation == "wacsf":
        return WACSF(n_radial=cfg.n_radial, n_angular=cfg.n_angular, zetas=cfg.zetas,
                     cutoff=cfg.cutoff, species=species)
    if cfg.representation == "acsf":
        if not species:
            raise ValueError("the acsf representation needs the species (atomic numbers) of the training set")
        return ACSF(species, n_radial=cfg.n_radial, n_angular=cfg.n_angular, zetas=cfg.zetas,
                    cutoff=cfg.cutoff)
    raise ValueError(f"unknown representation {cfg.representation!r}")


def build_potential(cfg: ModelConfig, species: List[int]) -> Potential:
    """A Potential for the elements `species` (atomic numbers); statistics not yet fitted.
    SchNet gets one output network for all atoms; (w)ACSF one per element (Behler–Parrinello)."""
    representation = build_representation(cfg, species)
    n_features = representation.n_features
    elemental = cfg.representation in SYMMETRY_FUNCTIONS
    if elemental:
        head = ElementalAtomwise(n_features, species, 1, cfg.n_hidden, cfg.n_layers)
    else:
        head = Atomwise(n_features, 1, cfg.n_hidden, cfg.n_layers)
    dipole_head = None
    if cfg.dipole:
        if elemental:
            dipole_head = ElementalDipoleMoment(n_features, species, cfg.n_hidden, cfg.n_layers)
        else:
            dipole_head = DipoleMoment(n_features, cfg.n_hidden, cfg.n_layers)
    return Potential(representation, head, species, dipole_head, repulsion=float(cfg.repulsion))
