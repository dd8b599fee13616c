"""mlpot's fused C++ operators (torch.ops.mlpot.*), compiled on first use.

    from mlpot import ops
    ops.load()          # compile if needed, register torch.ops.mlpot.cfconv; returns the .so path
    ops.available()     # True if they load (False, with the reason in ops.error(), if not)
    ops.use_fused_kernels(model)   # swap a model's PyTorch kernels for the fused ones
    ops.use_tabulated_kernels(model)   # filters as quintic splines (error checked)

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


def use_tabulated_kernels(module: torch.nn.Module, spacing: float = 0.0) -> dict:
    """Replace every SchNet convolution in `module` by its filter tabulated as a quintic Hermite
    spline (mlpot.representations.filter_tables), in place, in the module's dtype: knots `spacing`
    Å apart, or (spacing 0) the coarsest of 0.02, 0.01, ... Å whose error is within
    filter_tables.TOLERANCE. Returns {"table_spacing": Å, "table_error": {"value": .., "slope": ..}}
    (largest deviations from the networks, relative to the filters' largest value and slope)."""
    from mlpot.representations.convolution import TabulatedConvolution
    from mlpot.representations.filter_tables import choose_tables
    from mlpot.representations.schnet import SchNet

    load()
    used, value_error, slope_error = 0.0, 0.0, 0.0
    for schnet in [m for m in module.modules() if isinstance(m, SchNet)]:
        rbf = schnet.radial_basis
        networks = [[block.filter_network[0].weight, block.filter_network[0].bias, block.filter_network[1].weight,
                     block.filter_network[1].bias, rbf.centers] for block in schnet.interactions]
        tables, used, value_error, slope_error = choose_tables(networks, float(rbf.coeff), schnet.cutoff, spacing)
        for block, table in zip(schnet.interactions, tables):
            block.convolution = TabulatedConvolution(table.to(block.filter_network[0].weight.dtype), used)
    return {"table_spacing": used, "table_error": {"value": value_error, "slope": slope_error}}


def kernels_of(module: torch.nn.Module) -> str:
    """"tabulated", "fused" or "reference": the convolution kernels `module` uses."""
    from mlpot.representations.convolution import FusedConvolution, TabulatedConvolution

    kinds = {type(m) for m in module.modules()}
    return "tabulated" if TabulatedConvolution in kinds else "fused" if FusedConvolution in kinds else "reference"


def uses_fused_kernels(module: torch.nn.Module) -> bool:
    return kernels_of(module) == "fused"
