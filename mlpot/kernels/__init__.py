"""SchNet's convolution kernels: the one place where a kernel is chosen and put into a model
(mlpot.kernels.registry). The kernels themselves: the plain-PyTorch reference
(mlpot.model.representations.convolution.ReferenceConvolution, part of the model definition), and
mlpot's C++ operators (mlpot.ops): fused filter networks and tabulated filters."""
from mlpot.kernels.registry import KERNELS, apply_kernels, available, choose_for_export, choose_for_training, kernels_of

__all__ = ["KERNELS", "apply_kernels", "available", "choose_for_export", "choose_for_training", "kernels_of"]
