"""Moved to mlpot.model.potential (kept here for one release)."""
from mlpot.model.exported import ExportedForward, ExportedPerLayer, ExportedSymmetryFunctions, pair_terms  # noqa: F401
from mlpot.model.potential import *  # noqa: F401,F403
from mlpot.model.potential import MAX_Z, Potential, atom_virial_of_edges, structure_inputs  # noqa: F401
