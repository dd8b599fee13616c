"""Small building blocks shared by representations and heads."""
from mlpot.nn.activations import ShiftedSoftplus, shifted_softplus
from mlpot.nn.cutoff import CosineCutoff
from mlpot.nn.dense import Dense, build_mlp
from mlpot.nn.radial import GaussianRBF
from mlpot.nn.scatter import scatter_add

__all__ = ["ShiftedSoftplus", "shifted_softplus", "CosineCutoff", "Dense", "build_mlp",
           "GaussianRBF", "scatter_add"]
