"""Dense layers and multilayer perceptrons."""
from typing import List, Optional

import torch
from torch import nn

from mlpot.model.nn.activations import ShiftedSoftplus


class Dense(nn.Linear):
    """y = activation(x Wᵀ + b), Xavier-uniform weights, zero bias."""

    def __init__(self, n_in: int, n_out: int, bias: bool = True, activation: Optional[nn.Module] = None):
        super().__init__(n_in, n_out, bias=bias)
        self.activation = activation if activation is not None else nn.Identity()

    def reset_parameters(self):
        nn.init.xavier_uniform_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(nn.functional.linear(x, self.weight, self.bias))


def build_mlp(n_in: int, n_out: int, n_hidden: Optional[List[int]] = None, n_layers: int = 2) -> nn.Sequential:
    """MLP with shifted-softplus between layers and a linear last layer.

    n_hidden: widths of the hidden layers; by default a pyramid halving the width per layer
    (SchNetPack's default), e.g. 128 -> 64 -> 1 for n_layers = 2.
    """
    if n_hidden is None:
        widths = [n_in]
        for _ in range(n_layers - 1):
            widths.append(max(n_out, widths[-1] // 2))
    else:
        widths = [n_in] + list(n_hidden)
    layers: List[nn.Module] = [Dense(a, b, activation=ShiftedSoftplus()) for a, b in zip(widths[:-1], widths[1:])]
    layers.append(Dense(widths[-1], n_out))
    return nn.Sequential(*layers)
