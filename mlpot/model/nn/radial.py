"""Radial basis expansions of interatomic distances."""
import torch
from torch import nn


class GaussianRBF(nn.Module):
    """exp(−(d − μ_k)² / (2 σ²)), centres μ_k evenly spaced from `start` to `cutoff` (Å),
    σ = the spacing between centres (SchNetPack's convention). d [E] -> [E, n_rbf]."""

    def __init__(self, n_rbf: int, cutoff: float, start: float = 0.0):
        super().__init__()
        if n_rbf < 2:
            raise ValueError(f"n_rbf must be at least 2, got {n_rbf}")
        centers = torch.linspace(start, cutoff, n_rbf, dtype=torch.float64)
        width = float(centers[1] - centers[0])
        self.n_rbf = n_rbf
        self.register_buffer("centers", centers.to(torch.get_default_dtype()))
        self.coeff = -0.5 / width ** 2

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        return gaussian_rbf(d, self.centers, self.coeff)


def gaussian_rbf(d: torch.Tensor, centers: torch.Tensor, coeff: float) -> torch.Tensor:
    """exp(coeff (d − μ_k)²): d [E] Å, centers μ [K] Å, coeff 1/Å² (negative) -> [E, K]."""
    diff = d[:, None] - centers
    return torch.exp(coeff * diff * diff)
