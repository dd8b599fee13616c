"""Export a Potential as one self-describing TorchScript file, and load it back.

The file holds `torch.jit.script(ExportedForward(potential))` — the same forward that was
trained, scripted, no model surgery (for SchNet `ExportedPerLayer`, which adds the layers one at
a time as exported methods; metadata "message_passing": "per_layer") — and the metadata JSON as
the extra file `mlpot.json` (keys in docs/exported_model.md). It runs with only torch installed, from Python
(torch.jit.load) or C++ (libtorch, the LAMMPS plugin).

Kernels (metadata "kernels"): "fused" files call mlpot's C++ operators (torch.ops.mlpot.*,
mlpot.ops): load_model and the LAMMPS plugin load them first; plain torch needs
`torch.ops.load_library(mlpot.ops.load())`. "reference" files need nothing but torch. The
default ("auto") is fused wherever the operators compile, else reference with a warning.
"""
from __future__ import annotations

import copy
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from mlpot.export_metadata import DTYPES, KERNELS, METADATA_NAME, build_metadata, check_metadata, message_passing

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_kernels(kernels: str, potential) -> str:
    """"fused" or "reference" for a requested "auto" | "fused" | "reference" ("reference" for
    models without fused kernels to use: the symmetry-function models)."""
    from mlpot import ops
    from mlpot.representations.convolution import ReferenceConvolution

    if kernels not in ("auto",) + KERNELS:
        raise ValueError(f"kernels must be auto, fused or reference, got {kernels!r}")
    if kernels == "reference" or not any(isinstance(m, ReferenceConvolution) for m in potential.modules()):
        return "reference"
    if ops.available():
        return "fused"
    if kernels == "fused":
        raise RuntimeError(f"the fused kernels are not available: {ops.error()}")
    warnings.warn(f"mlpot: exporting with the PyTorch reference kernels (slower): {ops.error()}", stacklevel=3)
    return "reference"


def script_potential(potential, dtype: str = "float32", kernels: str = "reference") -> torch.jit.ScriptModule:
    """The scripted ExportedForward of a copy of `potential` in `dtype`, on the CPU, in eval mode,
    parameters frozen, with "fused" or "reference" kernels. `potential` itself is left unchanged."""
    from mlpot import ops
    from mlpot.potential import ExportedForward, ExportedPerLayer

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    model = copy.deepcopy(potential).to(device="cpu", dtype=TORCH_DTYPES[dtype]).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    ops.use_fused_kernels(model, fused=resolve_kernels(kernels, model) == "fused")
    wrapper = ExportedPerLayer if message_passing(potential) == "per_layer" else ExportedForward
    return torch.jit.script(wrapper(model))


def export_model(potential, path, dtype: str = "float32", training_data: str = "unknown",
                 metadata_extra: dict[str, Any] | None = None, kernels: str = "auto") -> dict[str, Any]:
    """Write `potential` to `path` as one TorchScript file; returns the metadata written.

    dtype: "float32" (fast, LAMMPS default) or "float64" (NVE, Hessians, finite differences).
    training_data: where the training data came from (free text, stored in the metadata).
    kernels: "auto" (fused where available), "fused" or "reference" (plain PyTorch, portable).
    """
    chosen = resolve_kernels(kernels, potential)
    metadata = build_metadata(potential, dtype, training_data, metadata_extra, kernels=chosen)
    scripted = script_potential(potential, dtype, chosen)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(scripted, str(path), _extra_files={METADATA_NAME: json.dumps(metadata, indent=1)})
    return metadata


def read_metadata(path) -> dict[str, Any]:
    """The metadata of a model file, checked, without loading the model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} not found; write one with `mlpot export`")
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(f"/extra/{METADATA_NAME}")]
            if not names:
                raise ValueError(f"{path}: not an mlpot model file (no {METADATA_NAME} inside); "
                                 "write one with `mlpot export`")
            text = archive.read(names[0]).decode("utf-8")
    except zipfile.BadZipFile:
        raise ValueError(f"{path}: not an mlpot model file (not a TorchScript archive); "
                         "write one with `mlpot export`") from None
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not an mlpot model file ({METADATA_NAME} is not valid JSON: {err})") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: not an mlpot model file ({METADATA_NAME} is not a JSON object)")
    return check_metadata(metadata, str(path))


def load_model(path, device: str | torch.device = "cpu") -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """(scripted module on `device`, metadata) of an exported model file, in eval mode.

    The module's forward(positions, atomic_numbers, edge_index, shift_vectors, cell, n_local,
    compute_virial) is documented in mlpot.potential.ExportedForward.
    """
    metadata = read_metadata(path)
    if metadata.get("kernels") == "fused":
        from mlpot import ops

        if not ops.available():
            raise RuntimeError(f"{path} uses mlpot's fused kernels, which are not available here "
                               f"({ops.error()}); re-export the model with `mlpot export --kernels reference`")
    module = torch.jit.load(str(path), map_location=device)
    return module.eval(), metadata
