"""Output heads: atomic features [N, F] -> per-atom outputs, aggregated per structure.

Atomwise: one network for all atoms. ElementalAtomwise: one network per element (the
Behler–Parrinello form). Both are called as head(features [N, F], atomic_numbers [N]) and
return per-atom values [N, n_out]; aggregation over structures happens in the Potential
(energies) or in the dipole heads.

DipoleMoment / ElementalDipoleMoment: latent atomic charges q_i (e) from an (elemental)
network, shifted so that each structure's charges sum to its total charge, and the dipole
μ_b = Σ_i q_i (r_i − r_com,b) (e·Å) about the centre of mass. Called as
head(data, features) -> {DIPOLE: [B, 3], CHARGES: [N]}.
"""
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from mlpot import keys as K
from mlpot.model.nn import build_mlp, scatter_add
from mlpot.model.nn.species import species_index, species_table


class Atomwise(nn.Module):
    """y_i = MLP(h_i) [N, n_out]; `aggregate` sums ("sum", extensive) or averages ("mean",
    intensive) per structure [B, n_out]."""

    def __init__(self, n_in: int, n_out: int = 1, n_hidden: Optional[List[int]] = None, n_layers: int = 2):
        super().__init__()
        self.net = build_mlp(n_in, n_out, n_hidden, n_layers)

    def forward(self, features: torch.Tensor, atomic_numbers: torch.Tensor) -> torch.Tensor:
        return self.net(features)


def aggregate(values: torch.Tensor, batch: torch.Tensor, n_structures: int, mode: str = "sum") -> torch.Tensor:
    """Per-atom values [N, ...] -> per-structure sums or means [B, ...]."""
    total = scatter_add(values, batch, n_structures)
    if mode == "mean":
        counts = scatter_add(torch.ones_like(batch, dtype=values.dtype), batch, n_structures)
        shape = [n_structures] + [1] * (values.dim() - 1)
        total = total / counts.clamp(min=1).reshape(shape)
    return total


def n_structures_of(inputs: Dict[str, torch.Tensor]) -> int:
    """Number of structures B in a batch (1 when the batch index is absent)."""
    if K.N_ATOMS in inputs:
        return inputs[K.N_ATOMS].shape[0]
    if K.CELL in inputs and inputs[K.CELL].dim() == 3:
        return inputs[K.CELL].shape[0]
    return 1


class ElementalAtomwise(nn.Module):
    """y_i = MLP_{Z_i}(h_i) [N, n_out]: one network per element of `species` (Behler–Parrinello).
    An atom of another element raises a ValueError."""

    def __init__(self, n_in: int, species: List[int], n_out: int = 1, n_hidden: Optional[List[int]] = None,
                 n_layers: int = 2):
        super().__init__()
        if not species:
            raise ValueError("ElementalAtomwise needs the model's species (atomic numbers)")
        self.species: List[int] = sorted(int(z) for z in species)
        self.n_out = n_out
        self.nets = nn.ModuleList([build_mlp(n_in, n_out, n_hidden, n_layers) for _ in self.species])
        self.register_buffer("element_index", species_table(self.species))

    def forward(self, features: torch.Tensor, atomic_numbers: torch.Tensor) -> torch.Tensor:
        element = species_index(self.element_index, atomic_numbers)
        out = torch.zeros((features.shape[0], self.n_out), dtype=features.dtype, device=features.device)
        for k, net in enumerate(self.nets):
            rows = torch.nonzero(element == k).squeeze(1)
            out = out.index_copy(0, rows, net(features.index_select(0, rows)))
        return out

    def forward_masked(self, features: torch.Tensor, element: torch.Tensor) -> torch.Tensor:
        """forward's [N, n_out] with each atom's element index given (element [N]): every network
        on every atom, each atom keeping its own's. No sizes that depend on values (what a `.pt2`
        traces, mlpot.deploy.pt2_symmetry), at n_species times forward's work."""
        out = torch.zeros((features.shape[0], self.n_out), dtype=features.dtype, device=features.device)
        for k, net in enumerate(self.nets):
            out = torch.where((element == k)[:, None], net(features), out)
        return out


class MaskedElementalAtomwise(ElementalAtomwise):
    """ElementalAtomwise whose forward is forward_masked (no sizes that depend on values): what a
    `.pt2` traces in place of an ElementalAtomwise (mlpot.deploy.pt2_symmetry.traceable)."""

    def forward(self, features: torch.Tensor, atomic_numbers: torch.Tensor) -> torch.Tensor:
        return self.forward_masked(features, self.element_index[atomic_numbers])


def _atomic_masses() -> torch.Tensor:
    from ase.data import atomic_masses  # lazy: model/ loads with torch alone (README, Layout)
    return torch.tensor(atomic_masses[:119], dtype=torch.get_default_dtype())


class DipoleMoment(nn.Module):
    """Dipole from latent charges: q_i = MLP(h_i), q_i −= (Σ_b q − Q_b) / N_b so that the
    charges of structure b sum to its total charge Q_b (keys.TOTAL_CHARGE, default 0 e);
    μ_b = Σ_i q_i (r_i − r_com,b) with the centre of mass from atomic masses.
    Returns {DIPOLE: [B, 3] e·Å, CHARGES: [N] e}."""

    def __init__(self, n_in: int, n_hidden: Optional[List[int]] = None, n_layers: int = 2,
                 charge_net: Optional[nn.Module] = None):
        super().__init__()
        self.charge_net = charge_net if charge_net is not None else Atomwise(n_in, 1, n_hidden, n_layers)
        self.register_buffer("masses", _atomic_masses())

    def forward(self, data: Dict[str, torch.Tensor], features: torch.Tensor) -> Dict[str, torch.Tensor]:
        numbers = data[K.ATOMIC_NUMBERS]
        positions = data[K.POSITIONS]
        n_atoms = numbers.shape[0]
        n_structures = n_structures_of(data)
        if K.BATCH in data:
            batch = data[K.BATCH]
        else:
            batch = torch.zeros(n_atoms, dtype=torch.long, device=numbers.device)
        q = self.charge_net(features, numbers)[:, 0]
        if K.TOTAL_CHARGE in data:
            total = data[K.TOTAL_CHARGE].to(q.dtype).reshape(-1)
        else:
            total = torch.zeros(n_structures, dtype=q.dtype, device=q.device)
        dipole, q = self.dipole_of_charges(q, positions, numbers, batch, n_structures, total, False)
        return {K.DIPOLE: dipole, K.CHARGES: q}

    def dipole_of_charges(self, q: torch.Tensor, positions: torch.Tensor, numbers: torch.Tensor, batch: torch.Tensor,
                          n_structures: int, total: torch.Tensor, single: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """(dipoles [B, 3] e·Å, the charges shifted to each structure's total [N] e) of latent
        charges q [N]; single: one structure (B = 1) summed without a scatter (what a `.pt2`
        traces: inductor, torch 2.13, fails to generate scatters into one row)."""
        counts = per_structure(torch.ones_like(q), batch, n_structures, single).clamp(min=1.0)
        excess = (per_structure(q, batch, n_structures, single) - total) / counts
        q = q - excess[batch]
        masses = self.masses.to(positions.dtype)[numbers]
        mass_total = per_structure(masses, batch, n_structures, single).clamp(min=1e-12)
        com = per_structure(masses[:, None] * positions, batch, n_structures, single) / mass_total[:, None]
        dipole = per_structure(q[:, None] * (positions - com[batch]), batch, n_structures, single)
        return dipole, q


def per_structure(values: torch.Tensor, batch: torch.Tensor, n_structures: int, single: bool) -> torch.Tensor:
    """Sums of values [N, ...] per structure [B, ...] (batch [N]); single: B = 1, a plain sum."""
    if single:
        return values.sum(0, keepdim=True)
    return scatter_add(values, batch, n_structures)


class ElementalDipoleMoment(DipoleMoment):
    """DipoleMoment whose latent charges come from one network per element of `species`."""

    def __init__(self, n_in: int, species: List[int], n_hidden: Optional[List[int]] = None, n_layers: int = 2):
        super().__init__(n_in, n_hidden, n_layers,
                         charge_net=ElementalAtomwise(n_in, species, 1, n_hidden, n_layers))


def structure_dipole(head: DipoleMoment, positions: torch.Tensor, atomic_numbers: torch.Tensor,
                     features: torch.Tensor) -> torch.Tensor:
    """The dipole [3] e·Å of one neutral structure (positions [N, 3] Å) from a DipoleMoment head
    and the final features [N, F]: what a `.pt2` traces (no scatter, no batch dict)."""
    q = head.charge_net(features, atomic_numbers)[:, 0]
    zero = torch.zeros(1, dtype=q.dtype, device=q.device)
    return head.dipole_of_charges(q, positions, atomic_numbers, torch.zeros_like(atomic_numbers), 1, zero, True)[0][0]
