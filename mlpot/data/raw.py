"""What every format reader yields: one structure with labels still in source units."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DataError(ValueError):
    """A data file is malformed or cannot be used; the message says what to do."""


@dataclass
class RawFrame:
    """One structure as read from a source file, before unit conversion.

    index: position in the source (0-based); numbers [n]; positions [n, 3] and
    cell [3, 3] in the source length unit; pbc [3] bool; labels: any of "energy",
    "forces", "stress", "dipole", "total_charge" in source units; problem: why this
    frame cannot be used (e.g. a shape mismatch found while reading), or None.
    """
    index: int
    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    labels: dict = field(default_factory=dict)
    problem: str | None = None


def check_keys(path, present, **named) -> None:
    """DataError if a key the user named (option name -> key, e.g. energy_key="U0") is not
    among the keys `present` in the file."""
    for option, key in named.items():
        if key is not None and key not in present:
            raise DataError(f"{path}: --{option.replace('_', '-')} {key!r} is not in the file; "
                            f"it has: {', '.join(sorted(map(str, present))) or 'nothing'}")
