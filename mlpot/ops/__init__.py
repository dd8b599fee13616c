"""mlpot's fused C++ operators (torch.ops.mlpot.*), compiled on first use.

    from mlpot import ops
    ops.load()          # compile if needed, register torch.ops.mlpot.cfconv; returns the .so path
    ops.available()     # True if they load (False, with the reason in ops.error(), if not)

MLPOT_KERNELS=reference in the environment disables them (everything then runs in PyTorch).
Which kernel a model runs is chosen and put into it by mlpot.kernels.registry (use_fused_kernels,
use_tabulated_kernels and kernels_of moved there; the old names here still work for one release).
"""
from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path

import torch

from mlpot.ops.build import build_library
from mlpot.ops.fake_kernels import register_fake_kernels

_loaded: Path | None = None
_error: str | None = None


def load() -> Path:
    """Compile (cached) and load the operators into this process; returns the library path."""
    global _loaded
    if _loaded is None:
        path = build_library()
        torch.ops.load_library(str(path))
        register_fake_kernels()       # so that torch.export can trace the operators
        _loaded = path
    return _loaded


def available() -> bool:
    """Whether the fused operators can be used here (loads them on the first call)."""
    global _error
    if os.environ.get("MLPOT_KERNELS", "").lower() == "reference":
        _error = "disabled by MLPOT_KERNELS=reference"
        return False
    if _loaded is not None:
        return True
    if _error is not None:
        return False
    try:
        load()
    except (RuntimeError, OSError) as exc:
        _error = str(exc)
        return False
    return True


def error() -> str | None:
    """Why the operators are not available (None if they are or were not tried)."""
    return _error


_MOVED = ("use_fused_kernels", "use_tabulated_kernels", "kernels_of", "uses_fused_kernels")


def __getattr__(name):
    # the functions that put a kernel into a model moved up a layer, to mlpot.kernels.registry;
    # imported by name on first use so that this layer does not import the one above it
    if name in _MOVED:
        warnings.warn(f"mlpot.ops.{name} moved to mlpot.kernels.registry.{name}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module("mlpot.kernels.registry"), name)
    raise AttributeError(f"module 'mlpot.ops' has no attribute {name!r}")
