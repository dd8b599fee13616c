"""Write an ase.Atoms as a LAMMPS data file (atom_style atomic), types in a given element order."""
from __future__ import annotations

from pathlib import Path

from ase import units
from ase.data import atomic_masses, atomic_numbers


def _ase_velocity_to_angstrom_per_ps() -> float:
    return 1000.0 * units.fs


def write_lammps_data(path: str | Path, atoms, symbols: list[str], velocities: bool = False) -> Path:
    """Data file for `read_data` in units metal. Type k+1 is element symbols[k].

    The cell must be in LAMMPS form (a along x, b in the xy plane: a lower-triangular cell
    matrix); use `atoms.set_cell(atoms.cell.standard_form()[0], scale_atoms=True)` first.
    Atoms are wrapped into the cell. velocities=True writes atoms' velocities in Å/ps.
    """
    if not all(atoms.pbc):
        raise ValueError("write_lammps_data writes periodic boxes only: set atoms.pbc = True and a cell")
    cell = atoms.cell.array
    if abs(cell[0, 1]) > 1e-10 or abs(cell[0, 2]) > 1e-10 or abs(cell[1, 2]) > 1e-10:
        raise ValueError("the cell is not in LAMMPS form (lower-triangular): call "
                         "atoms.set_cell(atoms.cell.standard_form()[0], scale_atoms=True) first")
    type_of = {s: k + 1 for k, s in enumerate(symbols)}
    missing = sorted(set(atoms.get_chemical_symbols()) - set(type_of))
    if missing:
        raise ValueError(f"elements {missing} are not among the type symbols {symbols}")
    wrapped = atoms.copy()
    wrapped.wrap()
    lines = [f"# {atoms.get_chemical_formula()} written by mlpot; types: {' '.join(symbols)}", "",
             f"{len(atoms)} atoms", f"{len(symbols)} atom types",
             f"0.0 {cell[0, 0]:.16g} xlo xhi", f"0.0 {cell[1, 1]:.16g} ylo yhi", f"0.0 {cell[2, 2]:.16g} zlo zhi",
             f"{cell[1, 0]:.16g} {cell[2, 0]:.16g} {cell[2, 1]:.16g} xy xz yz", "", "Masses", ""]
    lines += [f"{k + 1} {atomic_masses[atomic_numbers[s]]:.8g}  # {s}" for k, s in enumerate(symbols)]
    lines += ["", "Atoms # atomic", ""]
    for n, (s, r) in enumerate(zip(wrapped.get_chemical_symbols(), wrapped.positions)):
        lines.append(f"{n + 1} {type_of[s]} {r[0]:.16g} {r[1]:.16g} {r[2]:.16g}")
    if velocities:
        v = atoms.get_velocities() * _ase_velocity_to_angstrom_per_ps()
        lines += ["", "Velocities", ""]
        lines += [f"{n + 1} {u[0]:.16g} {u[1]:.16g} {u[2]:.16g}" for n, u in enumerate(v)]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
