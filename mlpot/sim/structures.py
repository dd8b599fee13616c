"""Standard structures for benchmarks and tests: the systems of ../shared/bench/md_speed.py."""
from __future__ import annotations

import numpy as np
from ase.build import bulk, molecule


def water_box(n_side: int = 4, spacing: float = 3.1):
    """n_side³ water molecules on a cubic grid (spacing Å), in a periodic cubic box;
    n_side = 4 gives the 192-atom box."""
    water = molecule("H2O")
    atoms = None
    for i in range(n_side):
        for j in range(n_side):
            for k in range(n_side):
                m = water.copy()
                m.translate(np.array([i, j, k]) * spacing)
                atoms = m if atoms is None else atoms + m
    atoms.set_cell([n_side * spacing] * 3)
    atoms.pbc = True
    return atoms


def silicon(repeat: int):
    """Diamond Si, the 8-atom cubic cell (a = 5.43 Å) repeated `repeat` times each way."""
    return bulk("Si", "diamond", a=5.43, cubic=True).repeat(repeat)
