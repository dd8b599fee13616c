"""Reader for MD17-style npz files.

Two key sets (both kcal/mol, kcal/mol/Å, Å unless told otherwise):
  rMD17 (figshare 12672038, andersx/rmd17-npz): nuclear_charges [n], coords [T, n, 3],
        energies [T], forces [T, n, 3]
  MD17 / sGDML (quantum-machine.org/gdml): z [n], R [T, n, 3], E [T] or [T, 1], F [T, n, 3]
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from mlpot.data.raw import DataError, RawFrame, check_keys

KEYSETS = {
    "rmd17": ("nuclear_charges", "coords", "energies", "forces"),
    "md17": ("z", "R", "E", "F"),
}
DEFAULT_UNITS = {"energy": "kcal/mol", "length": "Å", "forces": "kcal/mol/Å"}


def read_md17_npz(path, limit: int | None = None, energy_key: str | None = None,
                  forces_key: str | None = None) -> tuple[dict, Iterator[RawFrame]]:
    """(declared units = {}, frames) of an MD17/rMD17 npz file; raises DataError if malformed.
    energy_key, forces_key: array names to use instead of the key set's."""
    try:
        data = np.load(str(path), allow_pickle=False)
        files = set(data.files)
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError ...
        raise DataError(f"{path}: cannot read as .npz ({type(exc).__name__}: {exc}); "
                        f"is it an MD17/rMD17 npz file?") from exc
    for name, (kz, kr, ke, kf) in KEYSETS.items():
        if kz in files and kr in files:
            break
    else:
        raise DataError(f"{path}: npz keys {sorted(files)} are not MD17/rMD17 keys; expected "
                        f"nuclear_charges, coords, energies, forces (rMD17) or z, R, E, F (MD17)")
    check_keys(path, files, energy_key=energy_key, forces_key=forces_key)
    ke, kf = energy_key or ke, forces_key or kf
    z = np.asarray(data[kz]).astype(np.int64).ravel()
    R = np.asarray(data[kr], dtype=float)
    if R.ndim == 2:
        R = R[None]
    n_frames = R.shape[0]
    if R.shape[1:] != (len(z), 3):
        raise DataError(f"{path}: {kr} has shape {R.shape} but {kz} has {len(z)} atoms; "
                        f"expected {kr} of shape [frames, {len(z)}, 3]")
    E = F = None
    if ke in files:
        E = np.asarray(data[ke], dtype=float).reshape(n_frames, -1) if data[ke].size == n_frames \
            else None
        if E is None:
            raise DataError(f"{path}: {ke} has shape {data[ke].shape} but there are "
                            f"{n_frames} frames; expected one energy per frame")
    if kf in files:
        F = np.asarray(data[kf], dtype=float)
        if F.shape != R.shape:
            raise DataError(f"{path}: {kf} has shape {F.shape} but {kr} has {R.shape}; "
                            f"expected forces of the same shape as the coordinates")
    n = n_frames if limit is None else min(n_frames, limit)

    def frames():
        for t in range(n):
            labels = {}
            if E is not None:
                labels["energy"] = E[t, 0]
            if F is not None:
                labels["forces"] = F[t]
            yield RawFrame(t, z, R[t], np.zeros((3, 3)), np.zeros(3, bool), labels)

    return {}, frames()
