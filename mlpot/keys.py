"""Names of the tensors in a batch dictionary (see docs/conventions.md).

A batch holds B structures with N atoms and E directed edges in total.
"""
from typing import Final

# --- inputs -----------------------------------------------------------------
ATOMIC_NUMBERS: Final = "atomic_numbers"  # [N] int64
POSITIONS: Final = "positions"            # [N, 3] Å
CELL: Final = "cell"                      # [B, 3, 3] Å, cell vectors as rows
PBC: Final = "pbc"                        # [B, 3] bool
BATCH: Final = "batch"                    # [N] int64, structure index of each atom
N_ATOMS: Final = "n_atoms"                # [B] int64, atoms per structure
EDGE_INDEX: Final = "edge_index"          # [2, E] int64, rows (i, j): j is a neighbour of i
EDGE_SHIFTS: Final = "edge_shifts"        # [E, 3] float, integer image shift S of j
SHIFT_VECTORS: Final = "shift_vectors"    # [E, 3] Å, S · cell (r_ij = r_j - r_i + S·cell)
TOTAL_CHARGE: Final = "total_charge"      # [B] e
N_LOCAL: Final = "n_local"                # [] int64, energy sums over atoms < n_local (LAMMPS ghosts)

# --- derived inside the model -------------------------------------------------
EDGE_VECTORS: Final = "edge_vectors"      # [E, 3] Å, r_ij
EDGE_LENGTHS: Final = "edge_lengths"      # [E] Å
STRAIN: Final = "strain"                  # [B, 3, 3] symmetric displacement gradient (for stress)
FEATURES: Final = "features"              # [N, F] atomic features from a representation

# --- outputs and labels ---------------------------------------------------------
ENERGY: Final = "energy"                  # [B] eV
ENERGIES: Final = "energies"              # [N] eV, per-atom energies
FORCES: Final = "forces"                  # [N, 3] eV/Å
STRESS: Final = "stress"                  # [B, 3, 3] eV/Å³, ASE sign (positive = tensile)
VIRIAL: Final = "virial"                  # [B, 3, 3] eV, -dE/dstrain
ATOM_VIRIAL: Final = "atom_virial"        # [N, 3, 3] eV, -1/2 r_e (x) dE/dr_e to both atoms of each edge
DIPOLE: Final = "dipole"                  # [B, 3] e·Å
CHARGES: Final = "partial_charges"        # [N] e, latent atomic charges

LABELS: Final = (ENERGY, FORCES, STRESS, DIPOLE)
