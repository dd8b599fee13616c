"""SchNet (Schütt et al. 2017; SchNetPack 2 layout).

Learned element embeddings, then T interaction blocks (no weight sharing), each a residual
update h_i += f2out( Σ_j in2f(h)_j ⊙ W_t(r_ij) ), where the filter W_t(r) is a two-layer
network (shifted softplus) of Gaussian-expanded distances times a cosine cutoff.
"""
from typing import Dict

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
                idx_i: torch.Tensor, idx_j: torch.Tensor) -> torch.Tensor:
        """h [N, F], rbf [E, n_rbf], fcut [E], idx_i/idx_j [E] -> update of h [N, F]."""
        w = self.filter_network(rbf) * fcut[:, None]
        x = self.in2f(h)
        messages = x[idx_j] * w
        x = scatter_add(messages, idx_i, h.shape[0])
        return self.f2out(x)


class SchNet(nn.Module):
    """SchNet representation. Defaults are the paper's: 128 features, 128 filters,
    3 interactions, 20 Gaussians on [0, cutoff], cosine cutoff 5 Å."""

    def __init__(self, n_atom_basis: int = 128, n_filters: int = 128, n_interactions: int = 3,
                 n_rbf: int = 20, cutoff: float = 5.0):
        super().__init__()
        self.cutoff = float(cutoff)
        self.n_features = n_atom_basis
        self.n_interactions = n_interactions
        self.embedding = nn.Embedding(MAX_Z, n_atom_basis, padding_idx=0)
        self.radial_basis = GaussianRBF(n_rbf, cutoff)
        self.cutoff_fn = CosineCutoff(cutoff)
        self.interactions = nn.ModuleList(
            [SchNetInteraction(n_atom_basis, n_rbf, n_filters) for _ in range(n_interactions)])

    def forward(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        idx_i = inputs[K.EDGE_INDEX][0]
        idx_j = inputs[K.EDGE_INDEX][1]
        d = inputs[K.EDGE_LENGTHS]
        rbf = self.radial_basis(d)
        fcut = self.cutoff_fn(d)
        h = self.embedding(inputs[K.ATOMIC_NUMBERS])
        for interaction in self.interactions:
            h = h + interaction(h, rbf, fcut, idx_i, idx_j)
        return h
