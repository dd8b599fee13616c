"""Training checkpoints: atomic, checksummed, loadable with torch.load(weights_only=True).

A checkpoint is a dict of tensors and plain Python values only (no pickled classes):

    format "mlpot-checkpoint", format_version 1, mlpot_version
    config        the whole training config as a nested dict
    model_config  the ``model:`` section (dict for mlpot.model.config.ModelConfig)
    species       list of atomic numbers the model was built for
    dtype         "float32" | "float64"
    model         state_dict of the trained weights
    model_ema     state_dict of the exponential moving average (the weights to use)
    optimizer, scheduler, epoch, step, best_val_loss, best_epoch, bad_epochs, elapsed_s,
    history (list of metrics rows), split {train, val, test: int64 tensors}, statistics
    checksum      sha256 over everything above

    potential = load_potential("runs/x/best.ckpt")       # Potential with EMA weights, eval mode

Writes go to a temporary file that is fsynced and renamed over the target, so a crash
leaves either the old or the new checkpoint. A truncated or altered file fails to load
with CheckpointError naming it.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

import mlpot
from mlpot.model.config import ModelConfig, build_potential

FORMAT = "mlpot-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged or of an unknown format; the message names the file."""


def to_plain(obj):
    """Tensors (moved to CPU) and plain Python values only: numpy arrays become lists,
    numpy scalars become floats/ints, tuples become lists, dict keys stay as they are."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint (only tensors and plain values)")


def _update_digest(h, obj) -> None:
    """Feed a canonical byte form of `obj` into the hash `h`."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        flat = t.reshape(-1).clone(memory_format=torch.contiguous_format)
        if flat.numel():
            h.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=lambda k: (type(k).__name__, str(k))):
            h.update(f"K{type(key).__name__}:{key}".encode())
            _update_digest(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for value in obj:
            _update_digest(h, value)
    else:
        h.update(f"V{type(obj).__name__}:{obj!r}".encode())


def checksum(state: dict) -> str:
    """sha256 of every entry of `state` except "checksum"."""
    h = hashlib.sha256()
    _update_digest(h, {k: v for k, v in state.items() if k != "checksum"})
    return h.hexdigest()


def atomic_write_bytes(path: Path, write) -> None:
    """Call write(file) on a temporary file next to `path`, fsync it, rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename is still atomic


def atomic_write_json(path: Path, obj) -> None:
    """`obj` as indented JSON in `path`, written atomically (atomic_write_bytes)."""
    text = json.dumps(obj, indent=2) + "\n"
    atomic_write_bytes(Path(path), lambda fh: fh.write(text.encode()))


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """Write `state` (tensors and plain values) atomically with its checksum."""
    state = to_plain(dict(state))
    state["format"] = FORMAT
    state["format_version"] = FORMAT_VERSION
    state["mlpot_version"] = mlpot.__version__
    state["checksum"] = checksum(state)
    atomic_write_bytes(Path(path), lambda fh: torch.save(state, fh))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read and verify a checkpoint (weights_only=True, tensors on CPU)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is damaged and was not loaded ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200]}); delete it, or resume from another "
                              f"checkpoint (best.ckpt) by copying it to last.ckpt") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an mlpot training checkpoint")
    if int(state.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {state['format_version']}, newer than this "
                              f"mlpot understands ({FORMAT_VERSION}); upgrade mlpot")
    if state.get("checksum") != checksum(state):
        raise CheckpointError(f"checkpoint {path} is damaged (checksum mismatch) and was not loaded; "
                              f"delete it, or resume from another checkpoint (best.ckpt)")
    return state


def potential_from_state(state: dict, weights: str = "ema"):
    """Rebuild the Potential stored in a loaded checkpoint dict (eval mode, CPU)."""
    if weights not in ("ema", "raw"):
        raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
    potential = build_potential(ModelConfig(**state["model_config"]), list(state["species"]))
    potential.to(getattr(torch, state.get("dtype", "float32")))
    potential.load_state_dict(state["model_ema" if weights == "ema" else "model"])
    return potential.eval()


def load_potential(path: str | os.PathLike, weights: str = "ema", device: str | torch.device = "cpu"):
    """The mlpot.model.potential.Potential stored in checkpoint `path`, in eval mode on `device`.

    weights="ema" (default) gives the exponential moving average used for validation and
    export; "raw" the optimizer's last weights. Raises CheckpointError if the file is
    missing or damaged.
    """
    state = load_checkpoint(path)
    try:
        potential = potential_from_state(state, weights)
    except (TypeError, KeyError, RuntimeError) as exc:   # settings or weights this mlpot does not know
        raise CheckpointError(
            f"{path} was written by mlpot {state.get('mlpot_version', '?')} and this mlpot "
            f"{mlpot.__version__} cannot rebuild its model ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}); load it with the mlpot that wrote it, or train again") from None
    return potential.to(device)


def checkpoint_info(path: str | os.PathLike) -> dict:
    """Metadata of a checkpoint for exports and reports: species, dtype, model_config,
    config, epoch, best_val_loss, statistics, data source, mlpot_version."""
    state = load_checkpoint(path)
    keys = ("species", "dtype", "model_config", "config", "epoch", "best_val_loss", "best_epoch",
            "statistics", "mlpot_version")
    info = {k: state.get(k) for k in keys}
    info["data_source"] = state.get("config", {}).get("data", {}).get("train")
    return info
