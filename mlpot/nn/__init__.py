"""Small building blocks shared by representations and heads."""
from mlpot.nn.activations import ShiftedSoftplus, shifted_softplus
from mlpot.nn.cutoff import CosineCutoff, cosine_cutoff
from mlpot.nn.dense import Dense, build_mlp
from mlpot.nn.radial import GaussianRBF, gaussian_rbf
from mlpot.nn.scatter import scatter_add

__all__ = ["ShiftedSoftplus", "shifted_softplus", "CosineCutoff", "cosine_cutoff", "Dense", "build_mlp",
           "GaussianRBF", "gaussian_rbf", "scatter_add"]
