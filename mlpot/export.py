"""Export a Potential as one self-describing TorchScript file, and load it back.

The file holds `torch.jit.script(ExportedForward(potential))` — the same forward that was
trained, scripted, no model surgery (for SchNet `ExportedPerLayer`, which adds the layers one at
a time as exported methods; metadata "message_passing": "per_layer") — and the metadata JSON as
the extra file `mlpot.json` (keys in docs/exported_model.md). It runs from Python (torch.jit.load)
or C++ (libtorch, the LAMMPS plugin); with "reference" kernels it needs only torch.

Kernels (metadata "kernels"): "fused" files call mlpot's C++ operators (torch.ops.mlpot.*,
mlpot.ops): load_model and the LAMMPS plugin load them first; plain torch needs
`torch.ops.load_library(mlpot.ops.load())`. "reference" files need nothing but torch. The
default ("auto") is fused wherever the operators compile, else reference with a warning.
"tabulated" (opt-in, an approximation) replaces SchNet's filters by cubic splines with knots
`table_spacing` Å apart (metadata "table_spacing"); also C++ operators.
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
        raise ValueError(f"kernels must be auto, {', '.join(KERNELS)}, got {kernels!r}")
    if kernels == "reference" or not any(isinstance(m, ReferenceConvolution) for m in potential.modules()):
        return "reference"
    if ops.available():
        return "fused" if kernels == "auto" else kernels
    if kernels != "auto":
        raise RuntimeError(f"the {kernels} kernels are not available: {ops.error()}")
    warnings.warn(f"mlpot: exporting with the PyTorch reference kernels (slower): {ops.error()}", stacklevel=3)
    return "reference"


def script_potential(potential, dtype: str = "float32", kernels: str = "reference",
                     table_spacing: float = 0.01) -> torch.jit.ScriptModule:
    """The scripted ExportedForward of a copy of `potential` in `dtype`, on the CPU, in eval mode,
    parameters frozen, with "fused", "reference" or "tabulated" kernels (knots `table_spacing` Å
    apart). `potential` itself is left unchanged."""
    from mlpot import ops
    from mlpot.potential import ExportedForward, ExportedPerLayer
    from mlpot.schnet_forces import ExportedSchNet, written_out_forces_apply

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    model = copy.deepcopy(potential).to(device="cpu", dtype=TORCH_DTYPES[dtype]).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    chosen = resolve_kernels(kernels, model)
    if chosen == "tabulated":
        ops.use_tabulated_kernels(model, table_spacing)
    else:
        ops.use_fused_kernels(model, fused=chosen == "fused")
    wrapper = ExportedPerLayer if message_passing(potential) == "per_layer" else ExportedForward
    if wrapper is ExportedPerLayer and written_out_forces_apply(model):
        wrapper = ExportedSchNet      # forces by the chain rule written out (mlpot/schnet_forces.py)
    return torch.jit.script(wrapper(model))


def export_model(potential, path, dtype: str = "float32", training_data: str = "unknown",
                 metadata_extra: dict[str, Any] | None = None, kernels: str = "auto",
                 table_spacing: float = 0.01) -> dict[str, Any]:
    """Write `potential` to `path` as one TorchScript file; returns the metadata written.

    dtype: "float32" (fast, LAMMPS default) or "float64" (NVE, Hessians, finite differences).
    training_data: where the training data came from (free text, stored in the metadata).
    kernels: "auto" (fused where available), "fused", "reference" (plain PyTorch, portable) or
    "tabulated" (splines with knots table_spacing Å apart: faster, approximate, opt-in).
    """
    chosen = resolve_kernels(kernels, potential)
    scripted = script_potential(potential, dtype, chosen, table_spacing)
    extra = dict(metadata_extra or {})
    if chosen == "tabulated":
        from mlpot.representations.convolution import knot_spacing

        extra["table_spacing"] = knot_spacing(float(potential.cutoff), table_spacing)
    metadata = build_metadata(potential, dtype, training_data, extra, kernels=chosen)
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
    if metadata.get("kernels") in ("fused", "tabulated"):
        from mlpot import ops

        if not ops.available():
            raise RuntimeError(f"{path} uses mlpot's {metadata['kernels']} kernels, which are not available here "
                               f"({ops.error()}); re-export the model with `mlpot export --kernels reference`")
    module = torch.jit.load(str(path), map_location=device)
    return module.eval(), metadata
