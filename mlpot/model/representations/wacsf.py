"""Atom-centred symmetry functions: wACSF (Gastegger et al., J. Chem. Phys. 148, 241709
(2018)) and element-resolved ACSF (Behler, J. Chem. Phys. 134, 074106 (2011)).

Radial, one per centre μ_k (Å):
    G2_k(i) = Σ_j g(Z_j) exp(−η (r_ij − μ_k)²) f_c(r_ij),
    μ_k evenly spaced from `radial_start` to the cutoff, η = 1 / (2 Δμ²).
Angular (Behler's G4 with centred Gaussians), one per width σ_m, ζ and λ = ±1:
    G4(i) = 2^(1−ζ) Σ_{j≠k} g(Z_j, Z_k) (1 + λ cos θ_ijk)^ζ
            · exp(−η_m (r_ij² + r_ik² + r_jk²)) f_c(r_ij) f_c(r_ik) f_c(r_jk),
    σ_m evenly spaced from `angular_start` to the cutoff, η_m = 1 / (2 σ_m²); the sum runs
    over ordered pairs of distinct neighbours (each unordered pair counted twice).
f_c is the cosine cutoff. wACSF: g(Z_j) = Z_j, g(Z_j, Z_k) = Z_j Z_k, so the size does not
grow with the number of elements. ACSF: one radial block per neighbour element and one
angular block per unordered pair of neighbour elements of the model's species.

Descriptors are standardised per element of the centre atom and per function,
(G − mean_Z) / std_Z (as n2p2 scales each symmetry function per element), with statistics of
the training set (`fit_standardization`): each element's network sees inputs of unit scale
although, e.g., an O atom's wACSF are far larger than an H atom's. Without the model's species
one set of statistics serves all atoms. Until fitted the standardisation is the identity.

Outside the training set's range the standardised descriptors are softly bounded
(`soft_bounds`): each keeps its value inside the [min, max] it had over the training atoms of
its element and saturates within RANGE_MARGIN beyond it. The element networks then never see an
input far outside what they were trained on: a structure with a shorter contact than any in
training (a few rMD17 test frames) costs a bounded error instead of one of 100 eV/Å.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from mlpot import keys as K
from mlpot.model.nn import CosineCutoff, scatter_add
from mlpot.model.nn.species import N_ELEMENTS, species_index, species_table
from mlpot.model.representations.triplets import edge_pairs


MAX_GAIN = 10.0   # per-element std >= (std over all atoms) / MAX_GAIN
RANGE_MARGIN = 1.0   # standardised descriptors saturate within this beyond the training range


def soft_bounds(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, margin: float) -> torch.Tensor:
    """x inside [lo, hi] unchanged; beyond, lo − m·tanh((lo − x)/m) and hi + m·tanh((x − hi)/m),
    so never further than `margin` m outside. Continuous with two continuous derivatives;
    lo = −inf, hi = +inf leave x as it is. Shapes broadcast."""
    above = (x - hi).clamp(min=0.0)
    below = (lo - x).clamp(min=0.0)
    return x - above + below + margin * (torch.tanh(above / margin) - torch.tanh(below / margin))


class SymmetryFunctions(nn.Module):
    """wACSF (species=None or element_resolved=False) or ACSF (element_resolved=True).

    forward(inputs) -> standardised descriptors [N, n_features]. No message passing:
    n_interactions = 1 (an atom's energy depends on neighbours within one cutoff).
    """

    def __init__(self, species: Optional[List[int]] = None, element_resolved: bool = False,
                 n_radial: int = 22, n_angular: int = 5, zetas: Sequence[float] = (1.0,),
                 cutoff: float = 5.0, radial_start: float = 0.5, angular_start: float = 1.0):
        super().__init__()
        if n_radial < 2:
            raise ValueError(f"n_radial must be at least 2 (the width is the centre spacing), got {n_radial}")
        if n_angular < 0:
            raise ValueError(f"n_angular must be 0 or more, got {n_angular}")
        if not 0 <= radial_start < cutoff or not 0 < angular_start <= cutoff:
            raise ValueError(f"radial_start ({radial_start} Å) and angular_start ({angular_start} Å) "
                             f"must lie below the cutoff ({cutoff} Å)")
        zetas = [float(z) for z in zetas]
        if n_angular > 0 and (not zetas or any(z < 1 for z in zetas)):
            raise ValueError(f"zetas must be a non-empty list of exponents >= 1, got {zetas}")
        if element_resolved and not species:
            raise ValueError("element-resolved ACSF needs the model's species (atomic numbers)")
        self.cutoff = float(cutoff)
        self.n_interactions = 1
        self.element_resolved = element_resolved
        self.cutoff_fn = CosineCutoff(cutoff)

        centers = torch.linspace(radial_start, cutoff, n_radial, dtype=torch.float64)
        self.radial_eta = 0.5 / float(centers[1] - centers[0]) ** 2
        self.register_buffer("radial_centers", centers.to(torch.get_default_dtype()))
        widths = torch.linspace(angular_start, cutoff, max(n_angular, 1), dtype=torch.float64)[:n_angular]
        self.register_buffer("angular_eta", (0.5 / widths ** 2).to(torch.get_default_dtype()))
        zeta = torch.tensor([z for z in zetas for _ in (1, -1)], dtype=torch.float64)
        lam = torch.tensor([lam for _ in zetas for lam in (1.0, -1.0)], dtype=torch.float64)
        self.register_buffer("zeta", zeta.to(torch.get_default_dtype()))
        self.register_buffer("lambda_", lam.to(torch.get_default_dtype()))
        self.register_buffer("angle_norm", (2.0 ** (1.0 - zeta)).to(torch.get_default_dtype()))

        if element_resolved:
            self.species: List[int] = sorted(int(z) for z in species)
            n_channels = len(self.species)
            weight = torch.ones(N_ELEMENTS)
            table = species_table(self.species)
        else:
            self.species = sorted(int(z) for z in species) if species else []
            n_channels = 1
            weight = torch.arange(N_ELEMENTS, dtype=torch.float64).to(torch.get_default_dtype())
            table = torch.zeros(N_ELEMENTS, dtype=torch.long)
        pair = torch.zeros(n_channels, n_channels, dtype=torch.long)
        k = 0
        for a in range(n_channels):
            for b in range(a, n_channels):
                pair[a, b] = k
                pair[b, a] = k
                k += 1
        self.n_channels = n_channels
        self.n_pair_channels = k
        self.register_buffer("element_weight", weight)
        self.register_buffer("element_channel", table)
        self.register_buffer("pair_channel", pair)

        self.n_radial = n_radial
        self.n_angular = n_angular
        self.n_theta = 2 * len(zetas) if n_angular > 0 else 0
        self.n_features = n_channels * n_radial + self.n_pair_channels * self.n_theta * n_angular
        # standardisation statistics: one row per element of the centre atom (one row for all
        # atoms without species)
        n_rows = max(len(self.species), 1)
        self.register_buffer("centre_row", species_table(self.species) if self.species
                             else torch.zeros(N_ELEMENTS, dtype=torch.long))
        self.register_buffer("sf_mean", torch.zeros(n_rows, self.n_features))
        self.register_buffer("sf_std", torch.ones(n_rows, self.n_features))
        # the standardised descriptors' range over the training atoms of each element (soft_bounds)
        self.register_buffer("sf_lo", torch.full((n_rows, self.n_features), float("-inf")))
        self.register_buffer("sf_hi", torch.full((n_rows, self.n_features), float("inf")))
        self.range_margin = RANGE_MARGIN

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # files from before the per-element statistics: one row [F] for every element, no table
        for name in ("sf_mean", "sf_std"):
            value = state_dict.get(prefix + name)
            if value is not None and value.dim() == 1:
                state_dict[prefix + name] = value[None, :].expand_as(getattr(self, name)).clone()
        if prefix + "sf_mean" in state_dict and prefix + "centre_row" not in state_dict:
            state_dict[prefix + "centre_row"] = self.centre_row.clone()
        for name, unbounded in (("sf_lo", float("-inf")), ("sf_hi", float("inf"))):   # files from before the range
            if prefix + "sf_mean" in state_dict and prefix + name not in state_dict:
                state_dict[prefix + name] = torch.full_like(getattr(self, name), unbounded)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def channels(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """Channel of each atom as a neighbour [N]: its element index (ACSF) or 0 (wACSF)."""
        if self.element_resolved:
            return species_index(self.element_channel, atomic_numbers)
        if atomic_numbers.numel() > 0 and (bool((atomic_numbers < 1).any())
                                           or bool((atomic_numbers >= self.element_channel.shape[0]).any())):
            raise ValueError("atomic numbers must lie in 1..118")
        return self.element_channel[atomic_numbers]

    def descriptors(self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                    vectors: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Raw (unstandardised) symmetry functions [N, n_features] from edges r_ij [E, 3] Å."""
        n_atoms = atomic_numbers.shape[0]
        keep = torch.nonzero(lengths < self.cutoff).squeeze(1)
        idx_i = edge_index[0][keep]
        e1, e2 = edge_pairs(idx_i, n_atoms)
        return self.descriptors_of_triplets(self.channels(atomic_numbers), atomic_numbers, idx_i, edge_index[1][keep],
                                            vectors[keep], lengths[keep], e1, e2)

    def descriptors_of_triplets(self, channel: torch.Tensor, atomic_numbers: torch.Tensor, idx_i: torch.Tensor,
                                idx_j: torch.Tensor, v: torch.Tensor, d: torch.Tensor, e1: torch.Tensor,
                                e2: torch.Tensor) -> torch.Tensor:
        """Raw symmetry functions [N, n_features] of edges i -> j (idx_i, idx_j [E], vectors v
        [E, 3] Å, lengths d [E] Å; edges beyond the cutoff add nothing) and the angle triplets
        (e1, e2 [T]: edge_pairs of idx_i); channel [N] from `channels`. No value checks and no
        sizes that depend on values: what a `.pt2` traces (mlpot.deploy.pt2_symmetry)."""
        n_atoms = atomic_numbers.shape[0]
        weight = self.element_weight.to(d.dtype)[atomic_numbers]
        fc = self.cutoff_fn(d)

        diff = d[:, None] - self.radial_centers[None, :]
        g2 = torch.exp(-self.radial_eta * diff * diff) * (fc * weight[idx_j])[:, None]
        radial = scatter_add(g2, idx_i * self.n_channels + channel[idx_j], n_atoms * self.n_channels)
        radial = radial.reshape(n_atoms, self.n_channels * self.n_radial)
        if self.n_angular == 0:
            return radial

        v1 = v[e1]
        v2 = v[e2]
        d1 = d[e1]
        d2 = d[e2]
        d12 = torch.linalg.norm(v2 - v1, dim=1)
        cos = (v1 * v2).sum(1) / (d1 * d2)
        gauss = torch.exp(-self.angular_eta[None, :] * (d1 * d1 + d2 * d2 + d12 * d12)[:, None])
        base = (1.0 + self.lambda_[None, :] * cos[:, None]).clamp(min=0.0)
        angle = self.angle_norm[None, :] * torch.pow(base, self.zeta[None, :])
        j = idx_j[e1]
        k = idx_j[e2]
        # factor 2: each unordered pair stands for the two ordered pairs (j, k) and (k, j)
        prefactor = 2.0 * fc[e1] * fc[e2] * self.cutoff_fn(d12) * weight[j] * weight[k]
        g4 = (angle[:, :, None] * gauss[:, None, :]).reshape(-1, self.n_theta * self.n_angular)
        g4 = g4 * prefactor[:, None]
        target = idx_i[e1] * self.n_pair_channels + self.pair_channel[channel[j], channel[k]]
        angular = scatter_add(g4, target, n_atoms * self.n_pair_channels)
        angular = angular.reshape(n_atoms, self.n_pair_channels * self.n_theta * self.n_angular)
        return torch.cat([radial, angular], dim=1)

    def standardise(self, raw: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Raw descriptors [N, n_features] standardised with the statistics of each atom's row [N]."""
        return (raw - self.sf_mean[rows]) / self.sf_std[rows]

    def bound(self, standardised: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Standardised descriptors [N, n_features] softly bounded to the training range of each
        atom's row [N]: what the element networks see."""
        return soft_bounds(standardised, self.sf_lo[rows], self.sf_hi[rows], self.range_margin)

    def bounded(self, raw: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """bound(standardise(raw, rows), rows) of raw descriptors [N, n_features]."""
        return self.bound(self.standardise(raw, rows), rows)

    def forward(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        standardised, rows = self.standardised(inputs)
        return self.bound(standardised, rows)

    def standardised(self, inputs: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """(standardised descriptors [N, n_features] before the soft bounds, each atom's row [N])."""
        raw = self.descriptors(inputs[K.ATOMIC_NUMBERS], inputs[K.EDGE_INDEX],
                               inputs[K.EDGE_VECTORS], inputs[K.EDGE_LENGTHS])
        rows = species_index(self.centre_row, inputs[K.ATOMIC_NUMBERS])
        return self.standardise(raw, rows), rows

    def extrapolation_grade(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        """[N]: how far each atom's descriptors lie outside the range the training atoms of its
        element had, in units of the descriptors' training std (the largest over descriptors;
        0 inside the range, so 0 on every training atom). A cheap single-model extrapolation
        grade: beyond ~RANGE_MARGIN the soft bounds saturate and the energy is no longer learned."""
        standardised, rows = self.standardised(inputs)
        beyond = (standardised - self.sf_hi[rows]).clamp(min=0.0) + (self.sf_lo[rows] - standardised).clamp(min=0.0)
        if beyond.shape[1] == 0:
            return torch.zeros(beyond.shape[0], dtype=beyond.dtype, device=beyond.device)
        return beyond.max(dim=1).values

    @torch.jit.unused
    def fit_standardization(self, graphs: Sequence[dict], batch_size: int = 64) -> Dict[str, int]:
        """Set the mean and standard deviation of each descriptor over the atoms of each element
        in `graphs` (mlpot.data.atoms_to_graph dicts), the std at least 1/MAX_GAIN of the
        function's std over all atoms, and the range (min, max) of the standardised values.
        Descriptors that never vary (e.g. an element pair absent from the data) keep std 1; an
        element absent from the data keeps mean 0, std 1 and no bounds. Returns counts for the log."""
        from mlpot.data.batch import collate  # lazy: model/ loads with torch alone; mlpot.data brings ASE

        if len(graphs) == 0:
            raise ValueError("fit_standardization needs at least one structure")
        dtype = self.sf_mean.dtype
        device = self.sf_mean.device
        n_rows = self.sf_mean.shape[0]
        total = torch.zeros(n_rows, self.n_features, dtype=torch.float64)
        total_sq = torch.zeros(n_rows, self.n_features, dtype=torch.float64)
        count = torch.zeros(n_rows, dtype=torch.float64)
        low = torch.full((n_rows, self.n_features), float("inf"), dtype=torch.float64)
        high = torch.full((n_rows, self.n_features), float("-inf"), dtype=torch.float64)
        with torch.no_grad():
            for start in range(0, len(graphs), batch_size):
                batch = collate(list(graphs[start:start + batch_size]), dtype, device)
                vectors = edge_vectors_of(batch)
                raw = self.descriptors(batch[K.ATOMIC_NUMBERS], batch[K.EDGE_INDEX], vectors,
                                       torch.linalg.norm(vectors, dim=1)).to(torch.float64).cpu()
                rows = species_index(self.centre_row, batch[K.ATOMIC_NUMBERS]).cpu()
                total.index_add_(0, rows, raw)
                total_sq.index_add_(0, rows, raw * raw)
                count.index_add_(0, rows, torch.ones_like(rows, dtype=torch.float64))
                spread = rows[:, None].expand_as(raw)
                low.scatter_reduce_(0, spread, raw, reduce="amin")
                high.scatter_reduce_(0, spread, raw, reduce="amax")
        seen = count[:, None] > 0
        n = count.clamp(min=1.0)[:, None]
        mean = torch.where(seen, total / n, torch.zeros_like(total))
        std = (total_sq / n - mean * mean).clamp(min=0.0).sqrt()
        all_mean = total.sum(0) / count.sum()
        all_std = (total_sq.sum(0) / count.sum() - all_mean * all_mean).clamp(min=0.0).sqrt()
        constant = (std <= 1e-10 * mean.abs().clamp(min=1.0)) | ~seen
        # an element seen in few, similar environments must not get a vanishing scale: at most
        # MAX_GAIN times the scale the function has over all atoms
        std = torch.maximum(std, all_std[None, :] / MAX_GAIN)
        std = torch.where(constant, torch.ones_like(std), std)
        self.sf_mean.copy_(mean.to(dtype))
        self.sf_std.copy_(std.to(dtype))
        unbounded = torch.full_like(low, float("inf"))
        self.sf_lo.copy_(torch.where(seen, (low - mean) / std, -unbounded).to(dtype))
        self.sf_hi.copy_(torch.where(seen, (high - mean) / std, unbounded).to(dtype))
        return {"n_atoms": int(count.sum()), "n_descriptors": self.n_features,
                "constant_descriptors": int(constant[seen.squeeze(1)].sum())}


def edge_vectors_of(batch: Dict[str, torch.Tensor]) -> torch.Tensor:
    """r_ij = r_j − r_i + S·cell [E, 3] Å for a collated batch."""
    i, j = batch[K.EDGE_INDEX][0], batch[K.EDGE_INDEX][1]
    positions = batch[K.POSITIONS]
    if K.SHIFT_VECTORS in batch:
        shifts = batch[K.SHIFT_VECTORS]
    else:
        cell = batch[K.CELL].reshape(-1, 3, 3)
        structure = batch[K.BATCH][i] if K.BATCH in batch else torch.zeros_like(i)
        shifts = torch.einsum("ek,ekl->el", batch[K.EDGE_SHIFTS].to(positions.dtype), cell[structure])
    return positions[j] - positions[i] + shifts


class WACSF(SymmetryFunctions):
    """Weighted ACSF: radial weight Z_j, angular weight Z_j Z_k (any element)."""

    def __init__(self, n_radial: int = 22, n_angular: int = 5, zetas: Sequence[float] = (1.0,),
                 cutoff: float = 5.0, radial_start: float = 0.5, angular_start: float = 1.0,
                 species: Optional[List[int]] = None):
        super().__init__(species, False, n_radial, n_angular, zetas, cutoff, radial_start, angular_start)


class ACSF(SymmetryFunctions):
    """Classic element-resolved ACSF for the elements `species` (atomic numbers)."""

    def __init__(self, species: List[int], n_radial: int = 22, n_angular: int = 5,
                 zetas: Sequence[float] = (1.0,), cutoff: float = 5.0, radial_start: float = 0.5,
                 angular_start: float = 1.0):
        super().__init__(species, True, n_radial, n_angular, zetas, cutoff, radial_start, angular_start)


__all__ = ["SymmetryFunctions", "WACSF", "ACSF", "edge_vectors_of"]
