"""Shifted softplus ssp(x) = ln(0.5 eˣ + 0.5) = softplus(x) − ln 2 (SchNet), so ssp(0) = 0."""
import math

import torch
from torch import nn

LN2 = math.log(2.0)


def shifted_softplus(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.softplus(x) - 0.6931471805599453  # ln 2 (a literal: TorchScript)


class ShiftedSoftplus(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return shifted_softplus(x)

