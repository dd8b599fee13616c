"""Fake (meta) kernels of the operators the written-out engine calls: the shapes and dtypes of
their outputs without running them, so that torch.export can trace a model through them
(mlpot.deploy.pt2). Registered by mlpot.ops.load() once the library is loaded; the C++ kernels
are registered for the CPU key (mlpot/ops/csrc), which leaves these to the Meta / fake modes.

Shapes (d [P] Å, x [N, F], T networks, M members):
  cfconv_filters -> (filter, slope) [T, P, F]
  cfconv_messages, cfconv_tabulated_messages -> [n_out, F]
  cfconv_gradient, cfconv_tabulated_gradient -> (grad_d [P], grad_x [N, F] or [0])
  pair_repulsion -> (energies [M, N], grad_d [M, P])
"""
from __future__ import annotations

import torch

def _filters(d, w1, b1, w2, b2, centers, coeff, cutoff):
    shape = (w2.shape[0], d.shape[0], w2.shape[1])
    return d.new_empty(shape), d.new_empty(shape)


def _messages(d, x, idx_i, idx_j, filter, cutoff, n_two_way, n_out, check_edges=True):
    return x.new_empty((n_out, x.shape[1]))


def _tabulated_messages(d, x, idx_i, idx_j, table, spacing, cutoff, n_two_way, n_out, check_edges=True):
    return x.new_empty((n_out, x.shape[1]))


def _gradient_outputs(d, x, want_x):
    return d.new_empty(d.shape), (x.new_empty(x.shape) if want_x else x.new_empty((0,)))


def _gradient(d, x, idx_i, idx_j, filter, slope, go, cutoff, n_two_way, n_out, want_x):
    return _gradient_outputs(d, x, want_x)


def _tabulated_gradient(d, x, idx_i, idx_j, table, go, spacing, cutoff, n_two_way, n_out, want_x):
    return _gradient_outputs(d, x, want_x)


def _pair_repulsion(d, numbers, idx_i, idx_j, element_index, radius, strength, weight, n_two_way):
    members = radius.shape[0]
    return d.new_empty((members, numbers.shape[0])), d.new_empty((members, d.shape[0]))


FAKE_KERNELS = {
    "mlpot::cfconv_filters": _filters,
    "mlpot::cfconv_messages": _messages,
    "mlpot::cfconv_gradient": _gradient,
    "mlpot::cfconv_tabulated_messages": _tabulated_messages,
    "mlpot::cfconv_tabulated_gradient": _tabulated_gradient,
    "mlpot::pair_repulsion": _pair_repulsion,
}


def register_fake_kernels() -> None:
    """Register FAKE_KERNELS; once per process, after the library is loaded (mlpot.ops.load)."""
    for name, kernel in FAKE_KERNELS.items():
        torch.library.register_fake(name)(kernel)
