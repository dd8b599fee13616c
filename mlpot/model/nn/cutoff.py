"""Cutoff functions f_c(d): smooth to zero (value and slope) at the cutoff."""
import math

import torch
from torch import nn


class CosineCutoff(nn.Module):
    """f_c(d) = ½ (cos(π d / r_c) + 1) for d < r_c, else 0. d, r_c in Å."""

    def __init__(self, cutoff: float):
        super().__init__()
        self.cutoff = float(cutoff)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        return cosine_cutoff(d, self.cutoff)


def cosine_cutoff(d: torch.Tensor, cutoff: float) -> torch.Tensor:
    """½ (cos(π d / cutoff) + 1) for d < cutoff, else 0; d [E] Å -> [E]."""
    f = 0.5 * (torch.cos(d * (math.pi / cutoff)) + 1.0)
    return f * (d < cutoff).to(d.dtype)
