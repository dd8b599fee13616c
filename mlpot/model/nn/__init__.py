"""Small building blocks shared by representations and heads."""
from mlpot.model.nn.activations import ShiftedSoftplus, shifted_softplus
from mlpot.model.nn.cutoff import CosineCutoff, cosine_cutoff
from mlpot.model.nn.dense import Dense, build_mlp
from mlpot.model.nn.radial import GaussianRBF, gaussian_rbf
from mlpot.model.nn.scatter import scatter_add

__all__ = ["ShiftedSoftplus", "shifted_softplus", "CosineCutoff", "cosine_cutoff", "Dense", "build_mlp",
           "GaussianRBF", "gaussian_rbf", "scatter_add"]
