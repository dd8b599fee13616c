"""SchNet (Schütt et al. 2017; SchNetPack 2 layout).

Learned element embeddings, then T interaction blocks (no weight sharing), each a residual
update h_i += f2out( Σ_j in2f(h)_j ⊙ W_t(r_ij) ), where the filter W_t(r) is a two-layer
network (shifted softplus) of Gaussian-expanded distances times a cosine cutoff.

Two evaluations of the same function (docs/speed.md):
- pair path (default, `use_pairs = True`): the filters depend only on d_ij = d_ji, so they are
  evaluated once per unordered pair on the half of a symmetric edge list, and each pair sends
  its message both ways; the first filter layers of all interactions are one matrix product.
- reference path (`use_pairs = False`): the straightforward per-edge formulation.
The pair path needs a symmetric list ((i, j, S) and (j, i, −S) both present, as every mlpot
neighbour list is). A cheap checksum over the edge list detects lists that are not; they
take the reference path, so the result is the same function either way.

Per layer (`embed`, then `layer(t, ...)` for t = 0 .. T-1): the reference path one interaction
at a time, for the LAMMPS plugin, which exchanges features of ghost atoms between layers.
"""
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from mlpot import keys as K
from mlpot.nn import CosineCutoff, Dense, GaussianRBF, ShiftedSoftplus, scatter_add

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

    def forward(self, h: torch.Tensor, rbf: torch.Tensor, fcut: torch.Tensor,
                idx_i: torch.Tensor, idx_j: torch.Tensor, n_targets: int = -1,
                n_two_way: int = 0) -> torch.Tensor:
        """Reference path. h [N, F], rbf [E, n_rbf], fcut [E], idx_i/idx_j [E] -> update of h
        [N, F], or of its first n_targets rows only (every idx_i < n_targets) when n_targets >= 0.
        Messages go j -> i; the first n_two_way edges also send i -> j (each of them stands for
        an unordered pair of atoms < n_targets, listed once)."""
        w = self.filter_network(rbf) * fcut[:, None]
        x = self.in2f(h)
        messages = x[idx_j] * w
        x_out = scatter_add(messages, idx_i, h.shape[0] if n_targets < 0 else n_targets)
        if n_two_way > 0:
            pairs = torch.arange(n_two_way, device=h.device)
            back = torch.index_select(x, 0, idx_i.index_select(0, pairs)) * w.index_select(0, pairs)
            x_out = x_out.index_add(0, idx_j.index_select(0, pairs), back)
        return self.f2out(x_out)

    def first_filter_layer(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(weight [n_filters, n_rbf], bias [n_filters]) of the filter's first dense layer."""
        layer = self.filter_network[0]
        return layer.weight, layer.bias

    def forward_pairs(self, h: torch.Tensor, softplus_hidden: torch.Tensor, fcut: torch.Tensor,
                      idx_i: torch.Tensor, idx_j: torch.Tensor) -> torch.Tensor:
        """Pair path. softplus_hidden [P, n_filters] = softplus(first filter layer) on the P
        unordered pairs (i, j), fcut [P]; messages go j -> i and i -> j. Returns the update of h."""
        second = self.filter_network[1]
        # ssp(z) = softplus(z) − ln 2, and the −ln 2 folds into the next layer's bias
        bias = second.bias - 0.6931471805599453 * second.weight.sum(dim=1)
        w = nn.functional.linear(softplus_hidden, second.weight, bias) * fcut[:, None]
        x = self.in2f(h)
        out = torch.zeros_like(x)
        out.index_add_(0, idx_i, torch.index_select(x, 0, idx_j) * w)
        out.index_add_(0, idx_j, torch.index_select(x, 0, idx_i) * w)
        return self.f2out(out)


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
        self.cutoff_fn = CosineCutoff(cutoff)
        self.interactions = nn.ModuleList(
            [SchNetInteraction(n_atom_basis, n_rbf, n_filters) for _ in range(n_interactions)])

    def forward(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        idx_i = inputs[K.EDGE_INDEX][0]
        idx_j = inputs[K.EDGE_INDEX][1]
        d = inputs[K.EDGE_LENGTHS]
        h = self.embed(inputs[K.ATOMIC_NUMBERS])
        if self.use_pairs and K.EDGE_VECTORS in inputs and len(self.interactions) > 0:
            half = half_of_symmetric_list(idx_i, idx_j, inputs[K.EDGE_VECTORS], h.shape[0])
            if half is not None:
                return self.forward_pairs(h, d[half], idx_i[half], idx_j[half])
        rbf = self.radial_basis(d)
        fcut = self.cutoff_fn(d)
        for interaction in self.interactions:
            h = h + interaction(h, rbf, fcut, idx_i, idx_j)
        return h

    def embed(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """Features before the first interaction, h_0 [N, F], of atomic_numbers [N]."""
        return self.embedding(atomic_numbers)

    def layer(self, t: int, h: torch.Tensor, d: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
              n_targets: int, n_two_way: int = 0) -> torch.Tensor:
        """Interaction t alone, reference path: h_{t+1} [n_targets, F] of the first n_targets
        atoms from h_t [N, F] of all atoms, edges (idx_i < n_targets, idx_j) [E] at d [E] Å.
        The edges need not be symmetric (the LAMMPS plugin passes only edges into local atoms);
        the first n_two_way edges carry messages both ways (pairs of atoms < n_targets, once)."""
        if t < 0 or t >= self.n_interactions:
            raise ValueError("SchNet.layer: interaction index out of range")
        out = h[:n_targets]
        for k, interaction in enumerate(self.interactions):
            if k == t:
                update = interaction(h, self.radial_basis(d), self.cutoff_fn(d), idx_i, idx_j, n_targets, n_two_way)
                out = out + update
        return out

    def forward_pairs(self, h: torch.Tensor, d: torch.Tensor, idx_i: torch.Tensor,
                      idx_j: torch.Tensor) -> torch.Tensor:
        """Pair path on P unordered pairs: d [P] Å, idx_i/idx_j [P]; h [N, F] the embeddings."""
        weights: List[torch.Tensor] = []
        biases: List[torch.Tensor] = []
        for interaction in self.interactions:
            weight, bias = interaction.first_filter_layer()
            weights.append(weight)
            biases.append(bias)
        rbf = self.radial_basis(d)
        fcut = self.cutoff_fn(d)
        hidden = nn.functional.softplus(nn.functional.linear(rbf, torch.cat(weights), torch.cat(biases)))
        # split, not slices: the backward of a slice fills a zero tensor of the whole width
        chunks = hidden.split(self.n_filters, dim=1)
        for t, interaction in enumerate(self.interactions):
            h = h + interaction.forward_pairs(h, chunks[t], fcut, idx_i, idx_j)
        return h
