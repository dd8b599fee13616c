"""The JSON metadata stored inside an exported model file (as the extra file `mlpot.json`).

The LAMMPS plugin parses these keys from C++; they are documented in docs/exported_model.md.
Change them only together with FORMAT_VERSION.
"""
from __future__ import annotations

import datetime
import json
from typing import Any

from ase.data import chemical_symbols

from mlpot.kernels.registry import KERNELS  # noqa: F401  (re-exported: the "kernels" values a file may name)
from mlpot.version import __version__

FORMAT_VERSION = 2   # 2: "provides" declares the file's methods (version-1 files are probed)
METADATA_NAME = "mlpot.json"
DTYPES = ("float32", "float64")
UNITS = {"energy": "eV", "length": "Å", "force": "eV/Å", "virial": "eV", "dipole": "e·Å"}
REQUIRED_KEYS = ("format_version", "mlpot_version", "cutoff", "n_interactions", "species",
                 "species_symbols", "dtype", "units", "outputs", "representation",
                 "training_data", "created")


def message_passing(potential) -> str:
    """"per_layer" when the export also holds the model's layers one at a time (SchNet with at
    least one interaction: mlpot.model.potential.ExportedPerLayer), else "whole_graph"."""
    representation = getattr(potential, "representation", None)
    per_layer = type(representation).__name__ == "SchNet" and int(getattr(representation, "n_interactions", 0)) > 0
    return "per_layer" if per_layer else "whole_graph"


def exported_outputs(potential) -> list[str]:
    """Names of the tensors the exported forward returns for `potential`."""
    outputs = ["energy", "energies", "forces", "virial"]
    if getattr(potential, "dipole_head", None) is not None:
        outputs.append("dipole")
    return outputs


def build_metadata(potential, dtype: str, training_data: str = "unknown",
                   extra: dict[str, Any] | None = None, kernels: str = "reference") -> dict[str, Any]:
    """Metadata of `potential` exported in `dtype` ("float32" | "float64").

    `extra` adds keys (it may not replace the required ones, which describe the model itself).
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    species = sorted(int(z) for z in potential.species)
    metadata: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "mlpot_version": __version__,
        "cutoff": float(potential.cutoff),
        "n_interactions": int(potential.n_interactions),
        "species": species,
        "species_symbols": [chemical_symbols[z] for z in species],
        "dtype": dtype,
        "units": dict(UNITS),
        "outputs": exported_outputs(potential),
        "representation": type(potential.representation).__name__.lower(),
        "training_data": str(training_data),
        "message_passing": message_passing(potential),
        "kernels": kernels,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    repulsion = getattr(potential, "repulsion", None)
    if repulsion is not None and float(repulsion.strength) > 0:
        metadata["repulsion"] = repulsion.describe(species)   # informative: the file computes it
    for key, value in (extra or {}).items():
        if (key in REQUIRED_KEYS or key in ("message_passing", "kernels", "repulsion")) and key != "training_data":
            raise ValueError(f"metadata key {key!r} is set by export_model from the model itself; "
                             "pass other keys in metadata_extra")
        metadata[key] = value
    json.dumps(metadata)  # fail here, not in the middle of saving, on values JSON cannot hold
    return metadata


def check_metadata(metadata: dict[str, Any], source: str) -> dict[str, Any]:
    """Raise a clear error when `metadata` (read from `source`) is of a newer or broken format."""
    version = metadata.get("format_version")
    if not isinstance(version, int):
        raise ValueError(f"{source}: not an mlpot model file (mlpot.json has no integer format_version)")
    if version > FORMAT_VERSION:
        raise ValueError(f"{source}: model file format {version} is newer than this mlpot "
                         f"(supports ≤ {FORMAT_VERSION}); upgrade mlpot")
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise ValueError(f"{source}: mlpot.json lacks {', '.join(missing)}; re-export the model "
                         "with `mlpot export`")
    return metadata


def format_metadata(metadata: dict[str, Any]) -> str:
    """Human-readable multi-line summary of `metadata` (for `mlpot info`)."""
    species = ", ".join(f"{s} ({z})" for s, z in zip(metadata["species_symbols"], metadata["species"]))
    units = ", ".join(f"{k} {v}" for k, v in metadata["units"].items())
    # per_layer: features of ghosts exchanged between layers, where the file holds the layers
    # (a .pt2 without its layer models runs the whole model in LAMMPS)
    exchanged = (metadata.get("message_passing") == "per_layer"
                 and metadata.get("provides", {}).get("per_layer", True))
    layers = 1 if exchanged else max(1, metadata["n_interactions"])
    shell = layers * metadata["cutoff"]
    lines = [
        f"format version   {metadata['format_version']} (mlpot {metadata['mlpot_version']})",
        f"representation   {metadata['representation']}, {metadata['n_interactions']} message-passing layers",
        f"cutoff           {metadata['cutoff']:g} Å (ghost shell for LAMMPS: {shell:g} Å)",
        f"species          {species}",
        f"dtype            {metadata['dtype']}",
        f"outputs          {', '.join(metadata['outputs'])}",
        f"units            {units}",
        f"training data    {metadata['training_data']}",
        f"created          {metadata['created']}",
    ]
    for key in sorted(set(metadata) - set(REQUIRED_KEYS)):
        value = metadata[key]
        if key == "table_error" and isinstance(value, dict):
            value = (f"values {value.get('value', float('nan')):.1e}, slopes {value.get('slope', float('nan')):.1e} "
                     "(largest deviation from the filter networks, relative to their largest value and slope)")
        lines.append(f"{key:<16} {value}")
    return "\n".join(lines)
