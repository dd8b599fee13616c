"""A pair repulsion below the training data's shortest contacts: the wall that keeps MD in the
region the network was trained on.

Nothing in a SchNet or a Behler–Parrinello network stops two atoms from passing through each
other where the training data has no example: there the network's energy is an extrapolation,
often attractive, and MD collapses (liquid water with mlpot's defaults: two oxygens on top of
each other after 0.2 ps). This term adds, for every pair of atoms of elements a, b closer than
r_ab — the shortest a–b distance in the training set —

    φ(r) = A (1 − x)³ / x,   x = r / r_ab < 1;   φ = 0 for r ≥ r_ab,

with strength A (eV; `model.repulsion`, 0 switches it off). φ, φ' and φ'' vanish at r_ab, so it
is zero on every training structure (training is unchanged) and joins smoothly; it grows as
A / x at short range (A/4 at x = ½: 25 eV for the default A = 100 eV). The pair energy is split
half to each atom (the per-atom energies include it).

The default strength was 10 eV until 2026-12-07: too weak in liquid water, where MD slid over
tens of picoseconds into configurations with many contacts below the data's (the H–H pairs of a
hydrogen cluster at 0.8–1.1 Å, against 1.34 Å in the data; each such pair cost ~1 eV at 10 eV),
40 eV below the data's energies, and then collapsed (seed 0 at 59 ps). From the same frame at
100 eV, the energy returned to the data's level within 0.3 ps and the run went on intact
(docs/benchmarks.md).

Edges are directed (i, j); every edge gives ½ φ to atom i, and an edge among the first
`n_two_way` (pairs listed once, messages both ways) also ½ φ to atom j.
"""
from typing import List, Tuple

import numpy as np
import torch
from torch import nn

from mlpot import keys as K
from mlpot.model.nn.species import species_table

DEFAULT_STRENGTH = 100.0       # eV (model.repulsion's default)
UNSEEN_FRACTION = 0.5          # r_ab of a pair absent from the data: this × (R_cov,a + R_cov,b)


def repulsion_and_slope(d: torch.Tensor, radius: torch.Tensor, strength: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(φ [E] eV, dφ/dr [E] eV/Å) at distances d [E] Å for contact radii [E] Å (0: no wall)."""
    walled = radius > 0
    safe_radius = torch.where(walled, radius, torch.ones_like(radius))
    x = d.clamp(min=1e-6) / safe_radius
    u = (1.0 - x).clamp(min=0.0) * walled.to(d.dtype)
    u2 = u * u
    energy = strength * u2 * u / x
    slope = strength * (-3.0 * u2 / x - u2 * u / (x * x)) / safe_radius
    return energy, slope


def edge_weights(idx_i: torch.Tensor, idx_j: torch.Tensor, weight: torch.Tensor, n_two_way: int) -> torch.Tensor:
    """[E]: how much of an edge's φ counts in the energy: ½ w_i, plus ½ w_j on the first n_two_way
    edges; weight [N] is 1 for atoms whose energy is counted (LAMMPS: the local atoms), else 0."""
    w = 0.5 * weight.index_select(0, idx_i)
    if n_two_way > 0:
        both = 0.5 * weight.index_select(0, idx_j.narrow(0, 0, n_two_way))
        w = torch.cat([w.narrow(0, 0, n_two_way) + both, w.narrow(0, n_two_way, w.shape[0] - n_two_way)])
    return w


def atom_shares(phi: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor, n_atoms: int,
                n_two_way: int) -> torch.Tensor:
    """Per-atom repulsion energies [..., n_atoms] eV of edge energies φ [..., E] (½ φ to i; to j as
    well on the first n_two_way edges; leading axes, e.g. committee members, kept)."""
    half = 0.5 * phi
    shape = list(phi.shape[:-1]) + [n_atoms]
    out = torch.zeros(shape, dtype=phi.dtype, device=phi.device).index_add(-1, idx_i, half)
    if n_two_way > 0:
        out = out.index_add(-1, idx_j.narrow(0, 0, n_two_way), half.narrow(-1, 0, n_two_way))
    return out


class PairRepulsion(nn.Module):
    """φ of the module docstring for a model's species: buffers `element_index` [119], `radius`
    [S, S] Å (r_ab; fitted by fit_contact_radii) and `strength` [] eV."""

    def __init__(self, species: List[int], strength: float = DEFAULT_STRENGTH):
        super().__init__()
        n = len(species)
        self.n_species: int = n
        self.register_buffer("element_index", species_table(species))
        self.register_buffer("radius", torch.zeros((n, n)))
        self.register_buffer("strength", torch.tensor(float(strength)))
        self._register_load_state_dict_pre_hook(_absent_means_off, with_module=True)

    def edge_radii(self, atomic_numbers: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor) -> torch.Tensor:
        """r_ab [E] Å of every edge."""
        element = self.element_index[atomic_numbers].clamp(min=0)
        return self.radius.reshape(-1).index_select(0, element[idx_i] * self.n_species + element[idx_j])

    def edge_terms(self, d: torch.Tensor, atomic_numbers: torch.Tensor, idx_i: torch.Tensor,
                   idx_j: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(φ [E] eV, dφ/dr [E] eV/Å) of edges (idx_i, idx_j) of lengths d [E] Å."""
        radius = self.edge_radii(atomic_numbers, idx_i, idx_j).to(d.dtype)
        return repulsion_and_slope(d, radius, self.strength.to(d.dtype))

    def forward(self, d: torch.Tensor, atomic_numbers: torch.Tensor, idx_i: torch.Tensor,
                idx_j: torch.Tensor) -> torch.Tensor:
        """Per-atom repulsion energies [N] eV for a full (directed, both ways) edge list."""
        phi, _ = self.edge_terms(d, atomic_numbers, idx_i, idx_j)
        return atom_shares(phi, idx_i, idx_j, atomic_numbers.shape[0], 0)

    @torch.jit.unused
    def describe(self, species: List[int]) -> dict:
        """{"strength_eV": A, "radii_A": {"H-O": r, ...}} for metadata and logs."""
        from ase.data import chemical_symbols  # lazy: model/ loads with torch alone (README, Layout)

        radii = {f"{chemical_symbols[a]}-{chemical_symbols[b]}": round(float(self.radius[i, j]), 4)
                 for i, a in enumerate(species) for j, b in enumerate(species) if j >= i}
        return {"strength_eV": float(self.strength), "radii_A": radii}


def _absent_means_off(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                      error_msgs):
    """Checkpoints written before the repulsion existed load as models without it (strength 0)."""
    if prefix + "strength" in state_dict:
        return
    state_dict[prefix + "strength"] = torch.zeros_like(module.strength)
    state_dict[prefix + "radius"] = torch.zeros_like(module.radius)
    state_dict[prefix + "element_index"] = module.element_index.clone()


def shortest_contacts(graphs, species: List[int]) -> np.ndarray:
    """[S, S] Å: the shortest distance between atoms of each element pair over the edges of
    mlpot.data.atoms_to_graph dicts (inf where a pair never comes within the cutoff)."""
    column = {int(z): k for k, z in enumerate(species)}
    n = len(species)
    best = np.full((n, n), np.inf)
    for g in graphs:
        i, j = g[K.EDGE_INDEX]
        if len(i) == 0:
            continue
        positions = np.asarray(g[K.POSITIONS], dtype=float)
        shifts = np.asarray(g[K.EDGE_SHIFTS], dtype=float) @ np.asarray(g[K.CELL], dtype=float).reshape(3, 3)
        d = np.linalg.norm(positions[j] - positions[i] + shifts, axis=1)
        element = np.array([column[int(z)] for z in g[K.ATOMIC_NUMBERS]])
        pair = element[i] * n + element[j]
        flat = best.reshape(-1)
        np.minimum.at(flat, pair, d)
    return np.minimum(best, best.T)


def contact_radii(graphs, species: List[int]) -> np.ndarray:
    """r_ab [S, S] Å: shortest_contacts, and for a pair the data never brings within the cutoff
    UNSEEN_FRACTION × the sum of the elements' covalent radii (ASE)."""
    from ase.data import covalent_radii  # lazy: model/ loads with torch alone (README, Layout)

    radii = shortest_contacts(graphs, species)
    for a, za in enumerate(species):
        for b, zb in enumerate(species):
            if not np.isfinite(radii[a, b]):
                radii[a, b] = UNSEEN_FRACTION * (covalent_radii[za] + covalent_radii[zb])
    return radii


def fit_contact_radii(repulsion: PairRepulsion, graphs, species: List[int]) -> dict:
    """Set the repulsion's r_ab from training graphs; returns PairRepulsion.describe()."""
    radii = contact_radii(graphs, species)
    with torch.no_grad():
        repulsion.radius.copy_(torch.as_tensor(radii, dtype=repulsion.radius.dtype))
    return repulsion.describe(species)
