"""Write water.data for in.water_nvt: n_side³ water molecules on a grid at ~1 g/cm³,
randomly rotated, in a cubic periodic box (LAMMPS types 1 = H, 2 = O).

    python make_water_data.py [--n-side 4] [--out water.data] [--model model.pt]
"""
import argparse
import sys

import numpy as np
from ase.build import molecule

from mlpot.lammps import write_lammps_data

SPACING = 3.1   # Å between molecule centres: 18.015 g/mol / (3.1 Å)³ ≈ 1.0 g/cm³


def water_box(n_side: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    atoms = None
    for index in np.ndindex(n_side, n_side, n_side):
        m = molecule("H2O")
        m.rotate(rng.uniform(0, 360), rng.normal(size=3), center="COM")
        m.translate(np.array(index) * SPACING - m.get_center_of_mass() + SPACING / 2)
        atoms = m if atoms is None else atoms + m
    atoms.set_cell([n_side * SPACING] * 3)
    atoms.pbc = True
    return atoms


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-side", type=int, default=4, help="molecules per box edge (4: 64 H2O, 192 atoms)")
    parser.add_argument("--out", default="water.data")
    parser.add_argument("--model", default=None, help="check that this exported model knows H and O")
    args = parser.parse_args(argv)
    if args.model:
        from mlpot.deploy.export import read_metadata
        known = read_metadata(args.model)["species_symbols"]
        if not {"H", "O"} <= set(known):
            print(f"{args.model} knows {' '.join(known)}, not H and O: train a model on water first", file=sys.stderr)
            return 1
    atoms = water_box(args.n_side)
    write_lammps_data(args.out, atoms, ["H", "O"])
    print(f"{args.out}: {len(atoms)} atoms, cubic box {atoms.cell[0, 0]:.2f} Å")
    return 0


if __name__ == "__main__":
    sys.exit(main())
