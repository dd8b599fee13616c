"""SchNet's continuous-filter convolution, as a kernel module with two implementations.

Both compute, for edges p = (idx_i[p], idx_j[p]) at distances d[p]:
    out[idx_i[p]] += x[idx_j[p]] * W(d[p])     for every edge
    out[idx_j[p]] += x[idx_i[p]] * W(d[p])     also, for p < n_two_way (an unordered pair once)
    W(d) = (w2 · ssp(w1 · rbf(d) + b1) + b2) · fc(d),  rbf_k(d) = exp(coeff (d − centers_k)²),
    fc the cosine cutoff; out [n_out, F].
ReferenceConvolution: plain PyTorch (any device, any order of derivatives), the reference.
FusedConvolution: torch.ops.mlpot.cfconv (mlpot/ops/csrc), edge blocks in cache and a
hand-written backward; on the CPU (other devices take the reference formulation, so an exported
file runs anywhere). mlpot.ops.use_fused_kernels swaps one for the other in a model.
The kernels hold no parameters, so state dicts do not depend on the choice.
TabulatedConvolution: W(d)·fc(d) of one trained interaction as a quintic Hermite spline on knots
spaced `spacing` Å (mlpot.representations.filter_tables, torch.ops.mlpot.cfconv_tabulated); its
table is a buffer and the weights passed in are ignored; off the CPU the same spline in PyTorch
(`spline_filter`).
"""

import torch
from torch import nn

from mlpot.representations.filter_tables import smooth_filter, spline_filter


def cutoff_filter(d: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                  centers: torch.Tensor, coeff: float, cutoff: float) -> torch.Tensor:
    """The filter W(d)·fc(d) [E, F] at distances d [E] Å (0 from the cutoff on)."""
    return smooth_filter(d, w1, b1, w2, b2, centers, coeff, cutoff) * (d < cutoff).to(d.dtype)[:, None]


def send_messages(x: torch.Tensor, w: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
                  n_two_way: int, n_out: int) -> torch.Tensor:
    """out [n_out, F]: out[idx_i] += x[idx_j] * w per edge, and out[idx_j] += x[idx_i] * w on the
    first n_two_way edges; x [N, F], w [E, F]."""
    out = torch.zeros((n_out, x.shape[1]), dtype=x.dtype, device=x.device)
    out = out.index_add(0, idx_i, torch.index_select(x, 0, idx_j) * w)
    if n_two_way > 0:
        i2, j2 = idx_i[:n_two_way], idx_j[:n_two_way]
        out = out.index_add(0, j2, torch.index_select(x, 0, i2) * w[:n_two_way])
    return out


class ReferenceConvolution(nn.Module):
    def forward(self, d: torch.Tensor, x: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
                w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                centers: torch.Tensor, coeff: float, cutoff: float, n_two_way: int, n_out: int) -> torch.Tensor:
        return send_messages(x, cutoff_filter(d, w1, b1, w2, b2, centers, coeff, cutoff), idx_i, idx_j, n_two_way, n_out)


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
