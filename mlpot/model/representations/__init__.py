"""Representations: atomic environments -> atomic features [N, F].

Each is an nn.Module with forward(inputs: Dict[str, Tensor]) -> Tensor [N, n_features],
reading keys.ATOMIC_NUMBERS, keys.EDGE_INDEX, keys.EDGE_VECTORS, keys.EDGE_LENGTHS, and
with attributes `cutoff` (Å), `n_features`, and `n_interactions` (message-passing layers:
how many cutoffs away an atom's energy can feel another atom; LAMMPS needs it).
Representations with fitted input statistics (wACSF, ACSF) have `fit_standardization(graphs)`.
"""
from mlpot.model.representations.schnet import SchNet
from mlpot.model.representations.wacsf import ACSF, WACSF, SymmetryFunctions

__all__ = ["SchNet", "WACSF", "ACSF", "SymmetryFunctions"]
