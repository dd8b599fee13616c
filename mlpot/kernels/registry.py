"""Which convolution kernel a SchNet runs: "reference" (plain PyTorch), "fused" (the filter
networks in mlpot's C++ operators) or "tabulated" (the filters as quintic splines, also C++).

The only place a kernel is chosen — for an exported file (choose_for_export) and for training
(choose_for_training), from what was asked, the dtype, the device and whether the C++
operators load here (available) — and put into a model (apply_kernels). Models without a
convolution (wACSF, ACSF) have no kernel to choose: "reference" for export, "none" for training.
"""
from __future__ import annotations

import warnings

import torch

from mlpot import ops
from mlpot.kernels.convolutions import FusedConvolution, TabulatedConvolution
from mlpot.kernels.filter_tables import choose_tables
from mlpot.model.representations.convolution import ReferenceConvolution
from mlpot.model.representations.schnet import SchNet

KERNELS = ("fused", "reference", "tabulated")


class KernelError(RuntimeError):
    """A kernel that was asked for cannot run here; the message says what to use instead."""


def has_convolution(potential: torch.nn.Module) -> bool:
    """Whether `potential` has a SchNet convolution whose kernel can be swapped."""
    return any(hasattr(m, "convolution") for m in potential.modules())


def available(kernel: str) -> bool:
    """Whether `kernel` can run here: "reference" always; "fused" and "tabulated" when mlpot's C++
    operators load (mlpot.ops; MLPOT_KERNELS=reference switches them off)."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    return kernel == "reference" or ops.available()


def unavailable_reason() -> str | None:
    """Why the C++ kernels cannot run here (None when they can or were not tried)."""
    return ops.error()


def choose_for_export(requested: str, potential: torch.nn.Module, dtype: str = "float32") -> str:
    """"tabulated", "fused" or "reference" for an export asking for "auto" | "fused" | "reference" |
    "tabulated" ("reference" for models without a convolution). "auto": where the operators
    load, "tabulated" in float32 and "fused" in float64 (the fastest kernels that reproduce the
    network to the export's own rounding), else "reference" with a warning."""
    if requested not in ("auto",) + KERNELS:
        raise ValueError(f"kernels must be auto, {', '.join(KERNELS)}, got {requested!r}")
    if requested == "reference" or not has_convolution(potential):
        return "reference"
    if ops.available():
        if requested == "auto":
            return "tabulated" if dtype == "float32" else "fused"
        return requested
    if requested != "auto":
        raise KernelError(f"the {requested} kernels are not available: {ops.error()}")
    warnings.warn(f"mlpot: exporting with the PyTorch reference kernels (slower): {ops.error()}", stacklevel=3)
    return "reference"


def choose_for_training(requested: str, potential: torch.nn.Module, device: torch.device) -> str:
    """"fused", "reference", or "none" (a model without a convolution) for training.kernels
    "auto" | "fused" | "reference": auto is fused on the CPU where the operators load, else the
    reference; fused elsewhere is refused (KernelError, saying what to set)."""
    if not has_convolution(potential):
        return "none"
    if requested == "reference" or (requested == "auto" and (device.type != "cpu" or not ops.available())):
        return "reference"
    if device.type != "cpu":
        raise KernelError(f"training.kernels: fused runs on the CPU only, not on {device}; use auto or reference")
    if not ops.available():
        raise KernelError(f"training.kernels: fused, but mlpot's C++ operators are not available "
                          f"({ops.error()}); use auto or reference")
    return "fused"


def apply_kernels(potential: torch.nn.Module, kernel: str, table_spacing: float = 0.0) -> dict:
    """Put `kernel` into every convolution of `potential`, in place ("none" leaves it as it is).
    Returns the tables' metadata for "tabulated" ({"table_spacing", "table_error"}), else {}."""
    if kernel == "none":
        return {}
    if kernel == "tabulated":
        return use_tabulated_kernels(potential, table_spacing)
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    use_fused_kernels(potential, fused=kernel == "fused")
    return {}


def use_fused_kernels(module: torch.nn.Module, fused: bool = True) -> int:
    """Swap every convolution kernel in `module` for the fused operator (fused=True; loads it)
    or for plain PyTorch (fused=False), in place. Returns the number swapped."""
    if fused:
        ops.load()
    old = (ReferenceConvolution, TabulatedConvolution) if fused else (FusedConvolution, TabulatedConvolution)
    new = FusedConvolution if fused else ReferenceConvolution
    targets = [m for m in module.modules() if isinstance(getattr(m, "convolution", None), old)]
    for m in targets:
        m.convolution = new()
    return len(targets)


def use_tabulated_kernels(module: torch.nn.Module, spacing: float = 0.0) -> dict:
    """Replace every SchNet convolution in `module` by its filter tabulated as a quintic Hermite
    spline (mlpot.kernels.filter_tables), in place, in the module's dtype: knots `spacing`
    Å apart, or (spacing 0) the coarsest of 0.02, 0.01, ... Å whose error is within
    filter_tables.TOLERANCE. Returns {"table_spacing": Å, "table_error": {"value": .., "slope": ..}}
    (largest deviations from the networks, relative to the filters' largest value and slope)."""
    ops.load()
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
    kinds = {type(m) for m in module.modules()}
    return "tabulated" if TabulatedConvolution in kinds else "fused" if FusedConvolution in kinds else "reference"


def uses_fused_kernels(module: torch.nn.Module) -> bool:
    return kernels_of(module) == "fused"
