"""The faster SchNet convolution kernels, beside the reference they replace
(mlpot.model.representations.convolution.ReferenceConvolution; same forward signature, same
function): mlpot's C++ operators on the CPU, the reference formulation elsewhere, so that an
exported file runs on any device.

FusedConvolution: torch.ops.mlpot.cfconv (mlpot/ops/csrc), the filter network evaluated in edge
blocks that stay in cache, with a hand-written backward.
TabulatedConvolution: W(d)·fc(d) of one trained interaction as a quintic Hermite spline on knots
spaced `spacing` Å (mlpot.kernels.filter_tables), torch.ops.mlpot.cfconv_tabulated; its table is a
buffer and the weights passed in are ignored; off the CPU the same spline in PyTorch.
mlpot.kernels.registry chooses between them and puts them into a model.
"""
import torch
from torch import nn

from mlpot.kernels.filter_tables import spline_filter
from mlpot.model.representations.convolution import cutoff_filter, send_messages


class FusedConvolution(nn.Module):
    def forward(self, d: torch.Tensor, x: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
                w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                centers: torch.Tensor, coeff: float, cutoff: float, n_two_way: int, n_out: int) -> torch.Tensor:
        if x.device.type != "cpu":
            return send_messages(x, cutoff_filter(d, w1, b1, w2, b2, centers, coeff, cutoff), idx_i, idx_j,
                                 n_two_way, n_out)
        return torch.ops.mlpot.cfconv(d.to(x.dtype), x, idx_i, idx_j, w1, b1, w2, b2, centers, coeff, cutoff, n_two_way, n_out)


class TabulatedConvolution(nn.Module):
    def __init__(self, table: torch.Tensor, spacing: float):
        super().__init__()
        self.register_buffer("table", table)
        self.spacing = float(spacing)

    def forward(self, d: torch.Tensor, x: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
                w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                centers: torch.Tensor, coeff: float, cutoff: float, n_two_way: int, n_out: int) -> torch.Tensor:
        if x.device.type != "cpu":
            return send_messages(x, spline_filter(d, self.table, self.spacing, cutoff), idx_i, idx_j, n_two_way, n_out)
        return torch.ops.mlpot.cfconv_tabulated(d.to(x.dtype), x, idx_i, idx_j, self.table, self.spacing, cutoff,
                                                n_two_way, n_out)
