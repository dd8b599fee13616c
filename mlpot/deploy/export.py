"""Export a Potential as one self-describing TorchScript file, and load it back.

The file holds `torch.jit.script(ExportedForward(potential))` — the same forward that was
trained, scripted, no model surgery (for SchNet `ExportedPerLayer`, which adds the layers one at
a time as exported methods; metadata "message_passing": "per_layer") — and the metadata JSON as
the extra file `mlpot.json` (keys in docs/exported_model.md). It runs from Python (torch.jit.load)
or C++ (libtorch, the LAMMPS plugin); with "reference" kernels it needs only torch.

Kernels (metadata "kernels"), for SchNet: "fused" files evaluate the filter networks with mlpot's
C++ operators (torch.ops.mlpot.*, mlpot.ops): load_model and the LAMMPS plugin load them first;
plain torch needs `torch.ops.load_library(mlpot.ops.load())`. "tabulated" files replace each
filter network by quintic Hermite splines through its value, slope and curvature at knots
`table_spacing` Å apart (mlpot.kernels.filter_tables; metadata "table_spacing" and
"table_error", the largest deviation from the network measured at export), also C++ operators.
"reference" files need nothing but torch. The default ("auto"), where the operators compile:
tabulated in float32 — the tables' error (~1e-10 of the filter values, ~1e-8 of their slopes)
lies far below float32 rounding, so the forces match the network's to float32 rounding — and
fused in float64; else reference with a warning.
"""
from __future__ import annotations

import copy
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from mlpot.deploy.pt2_model import is_pt2_archive, load_pt2, pt2_metadata_text
from mlpot.deploy.metadata import DTYPES, KERNELS, METADATA_NAME, build_metadata, check_metadata, message_passing
from mlpot.kernels import filter_tables
from mlpot.kernels.registry import apply_kernels, available, choose_for_export, unavailable_reason
from mlpot.kernels.written_out import ExportedSchNet, written_out_forces_apply
from mlpot.model.exported import ExportedForward, ExportedPerLayer, ExportedSymmetryFunctions
from mlpot.version import __version__

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class ModelFileError(ValueError):
    """A model file that this mlpot cannot load; the message says what to do."""


def resolve_kernels(kernels: str, potential, dtype: str = "float32") -> str:
    """The kernels an export of `potential` in `dtype` asking for `kernels` gets
    (mlpot.kernels.registry.choose_for_export; kept here for one release)."""
    return choose_for_export(kernels, potential, dtype)


def script_potential(potential, dtype: str = "float32", kernels: str = "reference",
                     table_spacing: float = 0.0) -> torch.jit.ScriptModule:
    """The scripted ExportedForward of a copy of `potential` in `dtype`, on the CPU, in eval mode,
    parameters frozen, with "auto", "fused", "reference" or "tabulated" kernels (knots
    `table_spacing` Å apart; 0: chosen by the tables' error). `potential` itself is left unchanged."""
    return scripted_with_kernels(potential, dtype, kernels, table_spacing)[0]


def scripted_with_kernels(potential, dtype: str, kernels: str,
                          table_spacing: float) -> tuple[torch.jit.ScriptModule, str, dict[str, Any]]:
    """(script_potential's module, the kernels chosen, the tables' metadata: table_spacing and
    table_error, or {}). "auto" keeps the network (fused) when no spacing down to
    filter_tables.FINEST_SPACING brings the tables within filter_tables.TOLERANCE."""
    wrapped, chosen, tables = wrapped_with_kernels(potential, dtype, kernels, table_spacing)
    return torch.jit.script(wrapped), chosen, tables


def wrapped_with_kernels(potential, dtype: str, kernels: str,
                         table_spacing: float) -> tuple[torch.nn.Module, str, dict[str, Any]]:
    """scripted_with_kernels before scripting: (the eager exported wrapper of a copy of
    `potential` — ExportedSchNet, ExportedPerLayer, ExportedSymmetryFunctions or ExportedForward —,
    the kernels chosen, the tables' metadata with "provides")."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    model = copy.deepcopy(potential).to(device="cpu", dtype=TORCH_DTYPES[dtype]).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    chosen = choose_for_export(kernels, model, dtype)
    tables = apply_kernels(model, chosen, table_spacing)
    if chosen == "tabulated":
        error = max(tables["table_error"].values())
        if kernels == "auto" and error > filter_tables.TOLERANCE:
            warnings.warn(f"mlpot: the filter tables stay {error:.1e} from the networks at the finest spacing; "
                          "exporting the fused network kernels", stacklevel=3)
            chosen, tables = "fused", apply_kernels(model, "fused")
    wrapper = ExportedPerLayer if message_passing(potential) == "per_layer" else ExportedForward
    if hasattr(model.representation, "extrapolation_grade"):
        wrapper = ExportedSymmetryFunctions   # with the per-atom extrapolation grade
    if wrapper is ExportedPerLayer and written_out_forces_apply(model):
        wrapper = ExportedSchNet      # forces by the chain rule written out (mlpot/kernels/written_out.py)
    tables = {**tables, "provides": provides(wrapper, model)}
    return wrapper(model), chosen, tables


def provides(wrapper, model) -> dict[str, Any]:
    """What an exported file offers beyond forward (metadata "provides", format version 2; engines
    read it instead of probing the file): per_layer (embed / interaction / readout / pair_terms),
    written_out (interaction_forward / _backward, readout_gradient), n_features (the width of the
    features exchanged between layers; 0 without per-layer methods), atom_virial (forward takes
    compute_atom_virial), extrapolation_grade (a method, wACSF / ACSF)."""
    per_layer = issubclass(wrapper, ExportedPerLayer)
    return {"per_layer": per_layer, "written_out": issubclass(wrapper, ExportedSchNet),
            "n_features": int(model.representation.n_features) if per_layer else 0, "atom_virial": True,
            "extrapolation_grade": issubclass(wrapper, ExportedSymmetryFunctions)}


def export_model(potential, path, dtype: str = "float32", training_data: str = "unknown",
                 metadata_extra: dict[str, Any] | None = None, kernels: str = "auto",
                 table_spacing: float = 0.0) -> dict[str, Any]:
    """Write `potential` to `path` as one TorchScript file; returns the metadata written.

    dtype: "float32" (fast, LAMMPS default) or "float64" (NVE, Hessians, finite differences).
    training_data: where the training data came from (free text, stored in the metadata).
    kernels: "auto" (module docstring), "fused", "reference" (plain PyTorch, portable) or
    "tabulated" (quintic splines with knots table_spacing Å apart; 0: the coarsest spacing whose
    error is within mlpot.kernels.filter_tables.TOLERANCE).
    """
    scripted, chosen, tables = scripted_with_kernels(potential, dtype, kernels, table_spacing)
    extra = dict(metadata_extra or {})
    extra.update(tables)
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
            compiled = None
            if names:
                text = archive.read(names[0]).decode("utf-8")
            elif is_pt2_archive(archive.namelist()):
                try:
                    text, compiled = pt2_metadata_text(archive, METADATA_NAME)
                except KeyError:
                    raise ValueError(f"{path}: a .pt2 package, but not an mlpot model file (no {METADATA_NAME} "
                                     "inside); write one with `mlpot export -o model.pt2`") from None
            else:
                raise ValueError(f"{path}: not an mlpot model file (no {METADATA_NAME} inside); "
                                 "write one with `mlpot export`")
            damaged = archive.testzip()      # torch.jit.load does not check the entries' CRC-32
    except zipfile.BadZipFile:
        if path.read_bytes()[:2] == b"PK":
            raise ModelFileError(f"{path} is damaged or truncated (its zip directory is unreadable); "
                                 "export it again from its checkpoint") from None
        raise ValueError(f"{path}: not an mlpot model file (not a TorchScript archive); "
                         "write one with `mlpot export`") from None
    if damaged is not None:
        raise ModelFileError(f"{path} is damaged or truncated ({damaged} fails its checksum); "
                             "export it again from its checkpoint")
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not an mlpot model file ({METADATA_NAME} is not valid JSON: {err})") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: not an mlpot model file ({METADATA_NAME} is not a JSON object)")
    if compiled is not None:   # what AOTInductor recorded of the machine the package was compiled on
        metadata.setdefault("compiled_for", {}).update(
            {"device": compiled.get("AOTI_DEVICE_KEY", "cpu"), "cpu_isa": compiled.get("AOTI_CPU_ISA", "")})
    return check_metadata(metadata, str(path))


def has_atom_virial(module, metadata: dict | None = None) -> bool:
    """Whether a loaded model's forward takes compute_atom_virial (the per-atom virial; files
    exported before it existed do not: export them again). An optional argument with a default,
    so the format version is unchanged: older engines call the same forward without it.
    Version-2 files declare it (metadata "provides"); version-1 files are probed."""
    declared = (metadata or {}).get("provides", {})
    if "atom_virial" in declared:
        return bool(declared["atom_virial"])
    return any(argument.name == "compute_atom_virial" for argument in module.forward.schema.arguments)


def load_model(path, device: str | torch.device = "cpu") -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """(scripted module on `device`, metadata) of an exported model file, in eval mode.

    The module's forward(positions, atomic_numbers, edge_index, shift_vectors, cell, n_local,
    compute_virial[, compute_atom_virial]) is documented in mlpot.model.potential.ExportedForward
    (has_atom_virial tells whether the file has the last argument).
    """
    metadata = read_metadata(path)
    kernel = metadata.get("kernels", "reference")
    if kernel in KERNELS and not available(kernel):
        raise RuntimeError(f"{path} uses mlpot's {kernel} kernels, which are not available here "
                           f"({unavailable_reason()}); re-export the model with `mlpot export --kernels reference`")
    if metadata.get("file_format") == "pt2":
        return load_pt2(path, metadata, device), metadata
    try:
        module = torch.jit.load(str(path), map_location=device)
    except RuntimeError as exc:
        raise ModelFileError(unloadable_message(path, metadata, exc)) from None
    return module.eval(), metadata



def unloadable_message(path, metadata: dict, exc: Exception) -> str:
    """One line on why torch.jit.load failed for a model file whose metadata was readable."""
    text = str(exc)
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)[:200]
    writer = f"mlpot {metadata.get('mlpot_version', '?')}"
    if "Unknown builtin op" in text or "Unknown type" in text or "does not have" in text:
        return (f"{path} was written by {writer} with operators this mlpot {__version__} does not have "
                f"({first}); export it again from its checkpoint with this mlpot, or load it with {writer}")
    return (f"{path} cannot be loaded ({first}): the file is damaged or truncated, or was written by "
            f"{writer} in a form this mlpot {__version__} does not read; export it again from its checkpoint")
