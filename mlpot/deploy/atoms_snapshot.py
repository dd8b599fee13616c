"""The structure of a calculator's last calculation, kept as ASE keeps it (Calculator.atoms, a
copy of the Atoms) but copied cheaply: Atoms.copy builds a new Atoms through its constructor,
~13 µs for a 9-atom molecule and ~35 µs inside an MD loop, a tenth of a `.pt2` call. A snapshot
copies the same state (arrays, cell, pbc, info, cell displacement, constraints) in ~4 µs, and
builds the Atoms copy only when someone asks for it (to_atoms).
"""
from __future__ import annotations

import copy

from ase import Atoms


class AtomsSnapshot:
    """A copy of the state of `atoms` (an ase.Atoms) at one moment: `arrays` (name -> array;
    positions [N, 3] Å, numbers [N], ...), `cell` [3, 3] Å, `pbc` [3], `info` (a shallow copy,
    as Atoms.copy makes), and what to_atoms needs for an Atoms equal to atoms.copy()."""

    __slots__ = ("arrays", "cell", "pbc", "info", "celldisp", "constraints", "_atoms")

    def __init__(self, atoms: Atoms, keep: bool = False):
        """keep: to_atoms gives `atoms` itself (an Atoms that is already a copy)."""
        self.arrays = {name: array.copy() for name, array in atoms.arrays.items()}
        self.cell = atoms.cell.array.copy()
        self.pbc = atoms.pbc.copy()
        self.info = dict(atoms.info)
        self.celldisp = atoms.get_celldisp()
        self.constraints = copy.deepcopy(atoms.constraints) if atoms.constraints else []
        self._atoms: Atoms | None = atoms if keep else None

    @staticmethod
    def applies(atoms) -> bool:
        """Whether a snapshot copies `atoms` as its own copy() would: an ase.Atoms, not a subclass
        that copies itself differently."""
        return type(atoms).copy is Atoms.copy

    def __len__(self) -> int:
        return len(self.arrays["positions"])

    def to_atoms(self) -> Atoms:
        """The Atoms this snapshot copied, as atoms.copy() would have given it (made once; the
        same object on later calls, as Calculator.atoms)."""
        if self._atoms is None:
            atoms = Atoms(cell=self.cell, pbc=self.pbc, info=self.info, celldisp=self.celldisp)
            atoms.arrays = {name: array.copy() for name, array in self.arrays.items()}
            atoms.constraints = copy.deepcopy(self.constraints)
            self._atoms = atoms
        return self._atoms

