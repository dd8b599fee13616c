"""Energies relative to the per-element reference energies, kept in float64.

A molecule's total energy is large (rMD17 ethanol: about −97 000 eV), and float32 resolves
it only to ~8 meV — coarser than the errors a good model makes. So training and evaluation
compare energies *relative to* the baseline Σ_i E_ref[Z_i]: the labels' baseline is
subtracted in float64 from the numpy graphs, and the model runs with its `atomref` buffer
zeroed, so it predicts the same relative energy. Forces are unaffected. The true reference
energies go back into every saved state dict, so checkpoints and exports are complete.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from mlpot import keys as K
from mlpot.data.batch import collate


def take_atomref(potential) -> np.ndarray:
    """The potential's reference energies as float64 [MAX_Z] (eV); its buffer is set to zero."""
    atomref = potential.atomref.detach().double().cpu().numpy().copy()
    with torch.no_grad():
        potential.atomref.zero_()
    return atomref


def with_atomref(state_dict: dict, atomref: np.ndarray) -> dict:
    """A copy of a Potential state dict with its `atomref` buffer set to `atomref`."""
    state = dict(state_dict)
    buffer = state["atomref"]
    state["atomref"] = torch.as_tensor(atomref, dtype=buffer.dtype, device=buffer.device)
    return state


def baseline(graphs: Sequence[dict], atomref: np.ndarray) -> np.ndarray:
    """[B] float64 Σ_i E_ref[Z_i] of each structure (eV)."""
    return np.array([atomref[g[K.ATOMIC_NUMBERS]].sum() for g in graphs], dtype=np.float64)


def reference_energies(graphs: Sequence[dict]) -> np.ndarray | None:
    """[B] float64 energy labels, or None unless every structure has one."""
    if not all(K.ENERGY in g for g in graphs):
        return None
    return np.array([float(g[K.ENERGY][0]) for g in graphs], dtype=np.float64)


def collate_relative(graphs: Sequence[dict], atomref: np.ndarray, dtype: torch.dtype,
                     device) -> dict:
    """collate(graphs) with the energy label replaced by E − Σ E_ref[Z] (computed in float64)."""
    batch = collate(graphs, dtype, device)
    energies = reference_energies(graphs)
    if energies is not None:
        batch[K.ENERGY] = torch.as_tensor(energies - baseline(graphs, atomref), dtype=dtype, device=device)
    return batch
