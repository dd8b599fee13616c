"""mlpot's fused C++ operators (torch.ops.mlpot.*), compiled on first use.

    from mlpot import ops
    ops.load()          # compile if needed, register torch.ops.mlpot.cfconv; returns the .so path
    ops.available()     # True if they load (False, with the reason in ops.error(), if not)
    ops.use_fused_kernels(model)   # swap a model's PyTorch kernels for the fused ones

MLPOT_KERNELS=reference in the environment disables them (everything then runs in PyTorch).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

_loaded: Path | None = None
_error: str | None = None


def load() -> Path:
    """Compile (cached) and load the operators into this process; returns the library path."""
    global _loaded
    if _loaded is None:
        from mlpot.ops.build import build_library

        path = build_library()
        torch.ops.load_library(str(path))
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


def use_fused_kernels(module: torch.nn.Module, fused: bool = True) -> int:
    """Swap every convolution kernel in `module` for the fused operator (fused=True; loads it)
    or back to plain PyTorch (fused=False), in place. Returns the number swapped."""
    from mlpot.representations.convolution import FusedConvolution, ReferenceConvolution

    if fused:
        load()
    old, new = (ReferenceConvolution, FusedConvolution) if fused else (FusedConvolution, ReferenceConvolution)
    targets = [m for m in module.modules() if isinstance(getattr(m, "convolution", None), old)]
    for m in targets:
        m.convolution = new()
    return len(targets)


def uses_fused_kernels(module: torch.nn.Module) -> bool:
    from mlpot.representations.convolution import FusedConvolution

    return any(isinstance(m, FusedConvolution) for m in module.modules())
