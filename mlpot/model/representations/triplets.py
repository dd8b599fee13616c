"""Angle triplets from an edge list, with TorchScript-compatible torch ops."""
from typing import Tuple

import torch


def edge_pairs(idx_i: torch.Tensor, n_atoms: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """All unordered pairs of distinct edges (e1, e2) with the same centre idx_i[e1] == idx_i[e2].

    idx_i [E] int64 in any order (edges need not be sorted by centre). Returns two [T]
    int64 tensors of edge indices, each pair once, T = Σ_i n_i (n_i − 1) / 2 with n_i the
    number of edges of atom i. Distinct edges may point to the same atom j through
    different periodic images; those pairs are kept (they are different neighbours).
    """
    order = torch.argsort(idx_i)
    centres = idx_i[order]
    counts = torch.bincount(centres, minlength=n_atoms)
    starts = torch.cumsum(counts, 0) - counts             # first sorted position of each centre
    position = torch.arange(order.shape[0], device=idx_i.device)
    rank = position - starts[centres]                     # rank of the edge among its centre's edges
    n_partners = counts[centres] - rank - 1               # later edges of the same centre
    first = torch.repeat_interleave(position, n_partners)
    block_start = torch.cumsum(n_partners, 0) - n_partners
    offset = torch.arange(first.shape[0], device=idx_i.device) - block_start[first]
    second = first + 1 + offset
    return order[first], order[second]


def angle_triplets(idx_i: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """edge_pairs(idx_i, n_atoms) as one [2, T] int64 tensor: the input a `.pt2` file of a
    wACSF / ACSF model takes beside its edges (its graph has no sizes that depend on values)."""
    e1, e2 = edge_pairs(idx_i, n_atoms)
    return torch.stack([e1, e2])
