"""SchNet's faster convolution kernels, beside the reference they replace
(mlpot.model.representations.convolution.ReferenceConvolution, part of the model definition):
the registry (the one place a kernel is chosen and put into a model), the fused and tabulated
kernels (convolutions.py, on mlpot's C++ operators in mlpot.ops), the filter tables, and the one
written-out engine (written_out.py; stacked.py is its committee form)."""
from mlpot.kernels.registry import KERNELS, apply_kernels, available, choose_for_export, choose_for_training, kernels_of

__all__ = ["KERNELS", "apply_kernels", "available", "choose_for_export", "choose_for_training", "kernels_of"]
