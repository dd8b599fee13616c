"""mlpot.deploy.step_arrays: the per-call comparisons and conversions of MLPotCalculator."""
from __future__ import annotations

import numpy as np
import torch

from mlpot.deploy.step_arrays import BYTES_UP_TO, same_array, to_float64, to_tensor


def test_same_array_small_and_large():
    for n in (3, BYTES_UP_TO + 1):      # compared by bytes, and by numpy
        a = np.random.default_rng(0).normal(size=n)
        assert same_array(a, a.copy())
        b = a.copy()
        b[-1] = np.nextafter(b[-1], np.inf)       # one ulp
        assert not same_array(b, a)
        assert not same_array(a[:-1], a)          # another shape
        assert not same_array(a, None)
    numbers = np.array([1, 6, 8])
    assert same_array(numbers, numbers.astype(np.int32)), "equal values in another dtype are equal"
    assert not same_array(np.array([True, False]), np.array([True, True]))


def test_to_tensor_and_back():
    a = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    t32 = to_tensor(a, torch.float32, torch.device("cpu"))
    assert t32.dtype == torch.float32 and t32.shape == (4, 3)
    np.testing.assert_allclose(t32.numpy(), a, rtol=1e-7)
    t64 = to_tensor(a, torch.float64, torch.device("cpu"))
    assert t64.dtype == torch.float64 and np.shares_memory(t64.numpy(), a), "as torch.from_numpy"
    back = to_float64(t32)
    assert back.dtype == np.float64 and not np.shares_memory(back, t32.numpy())
    np.testing.assert_allclose(back, a, rtol=1e-7)
    same = to_float64(t64)
    assert same.dtype == np.float64 and np.shares_memory(same, a), "float64 as it is, as .double().numpy()"
