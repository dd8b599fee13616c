"""mlpot's fused C++ operators (torch.ops.mlpot.*), compiled on first use.

    from mlpot import ops
    ops.load()          # compile if needed, register torch.ops.mlpot.cfconv; returns the .so path
    ops.available()     # True if they load (False, with the reason in ops.error(), if not)
    ops.use_fused_kernels(model)   # swap a model's PyTorch kernels for the fused ones
    ops.use_tabulated_kernels(model, spacing=0.01)   # filters as splines (approximate, opt-in)

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
    or for plain PyTorch (fused=False), in place. Returns the number swapped."""
    from mlpot.representations.convolution import FusedConvolution, ReferenceConvolution, TabulatedConvolution

    if fused:
        load()
    old = (ReferenceConvolution, TabulatedConvolution) if fused else (FusedConvolution, TabulatedConvolution)
    new = FusedConvolution if fused else ReferenceConvolution
    targets = [m for m in module.modules() if isinstance(getattr(m, "convolution", None), old)]
    for m in targets:
        m.convolution = new()
    return len(targets)


def use_tabulated_kernels(module: torch.nn.Module, spacing: float = 0.01) -> float:
    """Replace every SchNet convolution in `module` by its filter tabulated as a cubic Hermite
    spline with knots `spacing` Å apart (an approximation: see benchmarks/tabulated_error.py),
    in place, in the module's dtype. Returns the knot spacing used (cutoff / ⌈cutoff / spacing⌉)."""
    from mlpot.representations.convolution import TabulatedConvolution, filter_table
    from mlpot.representations.schnet import SchNet

    load()
    used = 0.0
    for schnet in [m for m in module.modules() if isinstance(m, SchNet)]:
        rbf = schnet.radial_basis
        for interaction in schnet.interactions:
            first, second = interaction.filter_network[0], interaction.filter_network[1]
            table, used = filter_table(first.weight, first.bias, second.weight, second.bias, rbf.centers,
                                       rbf.coeff, schnet.cutoff, spacing)
            interaction.convolution = TabulatedConvolution(table.to(first.weight.dtype), used)
    return used


def kernels_of(module: torch.nn.Module) -> str:
    """"tabulated", "fused" or "reference": the convolution kernels `module` uses."""
    from mlpot.representations.convolution import FusedConvolution, TabulatedConvolution

    kinds = {type(m) for m in module.modules()}
    return "tabulated" if TabulatedConvolution in kinds else "fused" if FusedConvolution in kinds else "reference"


def uses_fused_kernels(module: torch.nn.Module) -> bool:
    return kernels_of(module) == "fused"
