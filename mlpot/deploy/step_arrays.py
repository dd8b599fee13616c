"""The arrays of one MD step, handled cheaply: MLPotCalculator and SkinNeighborList compare a
step's positions, numbers, cell and pbc with the last step's, and move arrays between numpy and
torch, on every call. On a 9-atom molecule each np.array_equal costs ~1.2 µs and each torch
.to(dtype) / .double() ~2 µs of a call of ~0.4 ms; small arrays are compared by their bytes and
converted in numpy instead.
"""
from __future__ import annotations

import numpy as np
import torch

BYTES_UP_TO = 1024   # elements: above this, comparing bytes (two copies) costs more than numpy's ==
NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def same_array(new: np.ndarray, old: np.ndarray | None) -> bool:
    """Whether `new` equals `old` element by element (old None: False). Small arrays of one
    shape and dtype compare bit for bit: 0.0 and −0.0 count as different, which costs at most a
    calculation; NaN as its own bits."""
    if old is None:
        return False
    if new.shape != old.shape:
        return False
    if new.dtype == old.dtype and new.size <= BYTES_UP_TO:
        return new.tobytes() == old.tobytes()
    return bool(np.array_equal(new, old))


def to_tensor(array: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`array` as a tensor of `dtype` on `device` (a new one where the dtype or device differs,
    else sharing its memory, as torch.from_numpy(array).to(...))."""
    if device.type == "cpu" and dtype in NUMPY_DTYPES:
        return torch.from_numpy(array.astype(NUMPY_DTYPES[dtype], copy=False))
    return torch.from_numpy(array).to(device=device, dtype=dtype)


def to_float64(tensor: torch.Tensor) -> np.ndarray:
    """A model's output as a float64 numpy array: converted from float32, and sharing the memory
    of a float64 tensor on the CPU (as tensor.double().numpy())."""
    return tensor.detach().cpu().numpy().astype(np.float64, copy=False)
