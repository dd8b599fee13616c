"""SchNet (Schütt et al. 2017; SchNetPack 2 layout).

Learned element embeddings, then T interaction blocks (no weight sharing), each a residual
update h_i += f2out( Σ_j in2f(h)_j ⊙ W_t(r_ij) ), where the filter W_t(r) is a two-layer
network (shifted softplus) of Gaussian-expanded distances times a cosine cutoff.

The convolution is a kernel module (representations/convolution.py): plain PyTorch by default,
or mlpot's fused C++ operator (mlpot.ops.use_fused_kernels, done on export); same function.
The filters depend only on d_ij = d_ji, so on a symmetric edge list ((i, j, S) and (j, i, −S)
both present, as every mlpot neighbour list is) they are evaluated once per unordered pair,
each pair sending its message both ways (`use_pairs`, default). A cheap checksum over the edge
list detects lists that are not symmetric; they are evaluated edge by edge, the same function.

Per layer (`embed`, then `layer(t, ...)` for t = 0 .. T-1), for the LAMMPS plugin, which
exchanges features of ghost atoms between layers.
"""
from typing import Dict, Optional

import torch
from torch import nn

from mlpot import keys as K
from mlpot.model.nn import Dense, GaussianRBF, ShiftedSoftplus
from mlpot.model.representations.convolution import ReferenceConvolution

MAX_Z = 100


class SchNetInteraction(nn.Module):
    """One interaction block: atom-wise layer, continuous-filter convolution, two atom-wise layers."""

    def __init__(self, n_atom_basis: int, n_rbf: int, n_filters: int):
        super().__init__()
        self.in2f = Dense(n_atom_basis, n_filters, bias=False)
        self.filter_network = nn.Sequential(
            Dense(n_rbf, n_filters, activation=ShiftedSoftplus()), Dense(n_filters, n_filters))
        self.f2out = nn.Sequential(
            Dense(n_filters, n_atom_basis, activation=ShiftedSoftplus()), Dense(n_atom_basis, n_atom_basis))
        self.convolution = ReferenceConvolution()

    def forward(self, h: torch.Tensor, d: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
                centers: torch.Tensor, coeff: float, cutoff: float, n_two_way: int, n_out: int) -> torch.Tensor:
        """Update of h [N, F] for its first n_out atoms, [n_out, F]: messages along edges
        j -> i at d [E] Å (every idx_i < n_out), and also i -> j along the first n_two_way edges
        (unordered pairs of atoms < n_out, listed once). centers [K] Å, coeff 1/Å²: the Gaussians."""
        first = self.filter_network[0]
        second = self.filter_network[1]
        x = self.convolution(d, self.in2f(h), idx_i, idx_j, first.weight, first.bias, second.weight,
                             second.bias, centers, coeff, cutoff, n_two_way, n_out)
        return self.f2out(x)


def lexicographically_positive(v: torch.Tensor) -> torch.Tensor:
    """[E] bool: first non-zero component of each row of v [E, 3] is > 0."""
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    return (x > 0) | ((x == 0) & ((y > 0) | ((y == 0) & (z > 0))))


def half_of_symmetric_list(idx_i: torch.Tensor, idx_j: torch.Tensor, vectors: torch.Tensor,
                           n_atoms: int) -> Optional[torch.Tensor]:
    """Mask [E] of one edge per unordered pair (i < j, or i == j with r_ij lexicographically
    positive: a periodic self-image), or None when the list is visibly not symmetric.

    The test is a checksum, cheap and necessary, not a proof: the edge counts of both halves,
    and the sums of a pair key and of its square modulo a prime, must agree between the half and
    the reversed other half. A half list, a list with one direction of some pairs dropped or a
    zero-length self edge fails it."""
    v = vectors.detach()
    same = idx_i == idx_j
    positive = lexicographically_positive(v)
    canonical = (idx_i < idx_j) | (same & positive)
    reverse = (idx_i > idx_j) | (same & lexicographically_positive(-v))
    sign = canonical.to(torch.long) - reverse.to(torch.long)
    key = torch.where(canonical, idx_i * n_atoms + idx_j, idx_j * n_atoms + idx_i)
    residue = torch.remainder(key, 1048573)  # a prime < 2^20: Σ residue² fits in int64
    checks = torch.stack([(sign == 0).sum(), sign.sum(), (sign * key).sum(),
                          (sign * residue * residue).sum()])
    if bool((checks != 0).any()):
        return None
    return canonical


class SchNet(nn.Module):
    """SchNet representation. Defaults are the paper's: 128 features, 128 filters,
    3 interactions, 20 Gaussians on [0, cutoff], cosine cutoff 5 Å.

    inputs: batch dict with EDGE_INDEX [2, E], EDGE_LENGTHS [E] Å, ATOMIC_NUMBERS [N] and, for
    the pair path, EDGE_VECTORS [E, 3] Å. Returns features [N, n_atom_basis]."""

    def __init__(self, n_atom_basis: int = 128, n_filters: int = 128, n_interactions: int = 3,
                 n_rbf: int = 20, cutoff: float = 5.0):
        super().__init__()
        self.cutoff = float(cutoff)
        self.n_features = n_atom_basis
        self.n_filters = n_filters
        self.n_interactions = n_interactions
        self.use_pairs: bool = True
        self.embedding = nn.Embedding(MAX_Z, n_atom_basis, padding_idx=0)
        self.radial_basis = GaussianRBF(n_rbf, cutoff)
        self.interactions = nn.ModuleList(
            [SchNetInteraction(n_atom_basis, n_rbf, n_filters) for _ in range(n_interactions)])

    def forward(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        idx_i = inputs[K.EDGE_INDEX][0]
        idx_j = inputs[K.EDGE_INDEX][1]
        d = inputs[K.EDGE_LENGTHS]
        h = self.embed(inputs[K.ATOMIC_NUMBERS])
        n_atoms = h.shape[0]
        n_two_way = 0
        if self.use_pairs and K.EDGE_VECTORS in inputs and len(self.interactions) > 0:
            half = half_of_symmetric_list(idx_i, idx_j, inputs[K.EDGE_VECTORS], n_atoms)
            if half is not None:
                d, idx_i, idx_j = d[half], idx_i[half], idx_j[half]
                n_two_way = d.shape[0]
        for interaction in self.interactions:
            h = h + interaction(h, d, idx_i, idx_j, self.radial_basis.centers, self.radial_basis.coeff,
                                self.cutoff, n_two_way, n_atoms)
        return h

    def embed(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """Features before the first interaction, h_0 [N, F], of atomic_numbers [N]."""
        return self.embedding(atomic_numbers)

    def layer(self, t: int, h: torch.Tensor, d: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
              n_targets: int, n_two_way: int = 0) -> torch.Tensor:
        """Interaction t alone: h_{t+1} [n_targets, F] of the first n_targets atoms from h_t
        [N, F] of all atoms, edges (idx_i < n_targets, idx_j) [E] at d [E] Å. The edges need not
        be symmetric (the LAMMPS plugin passes only edges into local atoms); the first n_two_way
        edges carry messages both ways (pairs of atoms < n_targets, once)."""
        if t < 0 or t >= self.n_interactions:
            raise ValueError("SchNet.layer: interaction index out of range")
        out = h[:n_targets]
        for k, interaction in enumerate(self.interactions):
            if k == t:
                out = out + interaction(h, d, idx_i, idx_j, self.radial_basis.centers, self.radial_basis.coeff,
                                        self.cutoff, n_two_way, n_targets)
        return out
