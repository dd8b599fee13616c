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
        return ops.use_tabulated_kernels(potential, table_spacing)
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    ops.use_fused_kernels(potential, fused=kernel == "fused")
    return {}


def kernels_of(module: torch.nn.Module) -> str:
    """"tabulated", "fused" or "reference": the convolution kernels `module` uses."""
    return ops.kernels_of(module)
