"""SchNet's continuous-filter convolution: the filter and the plain-PyTorch kernel, the reference.

For edges p = (idx_i[p], idx_j[p]) at distances d[p]:
    out[idx_i[p]] += x[idx_j[p]] * W(d[p])     for every edge
    out[idx_j[p]] += x[idx_i[p]] * W(d[p])     also, for p < n_two_way (an unordered pair once)
    W(d) = (w2 · ssp(w1 · rbf(d) + b1) + b2) · fc(d),  rbf_k(d) = exp(coeff (d − centers_k)²),
    fc the cosine cutoff; out [n_out, F].
ReferenceConvolution computes it in plain PyTorch (any device, any order of derivatives). The
faster kernels with the same forward signature (fused filter networks, tabulated filters) live
in mlpot.kernels.convolutions and are put into a model by mlpot.kernels.registry. Kernels hold
no parameters (a tabulated kernel holds its table as a buffer), so state dicts do not depend on
the choice.
"""
import math

import torch
from torch import nn

from mlpot.model.nn import gaussian_rbf, shifted_softplus


def smooth_filter(d: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                  centers: torch.Tensor, coeff: float, cutoff: float) -> torch.Tensor:
    """The filter network times the cosine cutoff without its step: W(d)·½(cos(πd/r_c) + 1) [E, F]
    for any d [E] Å (cutoff_filter adds the step), so that its derivatives at d = r_c are the
    limits from below (W·fc has a kink in W'' there; the filter tables need them)."""
    hidden = shifted_softplus(nn.functional.linear(gaussian_rbf(d, centers, coeff), w1, b1))
    return nn.functional.linear(hidden, w2, b2) * (0.5 * (torch.cos(d * (math.pi / cutoff)) + 1.0))[:, None]


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
