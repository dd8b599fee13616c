"""Scatter-add: sum rows of `src` into `dim_size` bins given by `index`."""
import torch


def scatter_add(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """out[k] = Σ_{e: index[e] == k} src[e]; src [E, ...], index [E] -> [dim_size, ...]."""
    shape = [dim_size] + list(src.shape[1:])
    out = torch.zeros(shape, dtype=src.dtype, device=src.device)
    return out.index_add(0, index, src)
