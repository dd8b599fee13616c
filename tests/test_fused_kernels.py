"""mlpot's fused C++ convolution (torch.ops.mlpot.cfconv) against the plain-PyTorch reference
kernel it replaces: values and first derivatives (hand-written backward) to float64 rounding,
float32 within 1e-4 of the force scale, second derivatives (composite backward), weight
gradients, every edge layout the model and the LAMMPS plugin use, clear errors."""
import re

import pytest
import torch

from mlpot import ops
from mlpot.kernels import registry
from mlpot.kernels.convolutions import FusedConvolution
from mlpot.model.representations.convolution import ReferenceConvolution

if not ops.available():
    pytest.skip(f"fused kernels not available: {ops.error()}", allow_module_level=True)

CUTOFF = 5.0


def case(dtype, n_edges=300, n_atoms=40, n_out=30, n_two_way=100, features=16, hidden=12, n_rbf=9, seed=0):
    """Arguments of one convolution call: distances spread over (0.3, 5.6) Å, so some edges lie
    beyond the cutoff; every idx_i < n_out, idx_j < n_out on the two-way edges."""
    g = torch.Generator().manual_seed(seed)
    d = torch.rand(n_edges, generator=g, dtype=dtype) * 5.3 + 0.3
    x = torch.randn(n_atoms, features, generator=g, dtype=dtype)
    idx_i = torch.randint(0, n_out, (n_edges,), generator=g)
    idx_j = torch.randint(0, n_atoms, (n_edges,), generator=g)
    idx_j[:n_two_way] = torch.randint(0, n_out, (n_two_way,), generator=g)
    w1 = torch.randn(hidden, n_rbf, generator=g, dtype=dtype)
    b1 = torch.randn(hidden, generator=g, dtype=dtype)
    w2 = torch.randn(features, hidden, generator=g, dtype=dtype) / 3
    b2 = torch.randn(features, generator=g, dtype=dtype)
    centers = torch.linspace(0.0, CUTOFF, n_rbf, dtype=dtype)
    coeff = -0.5 / float(centers[1] - centers[0]) ** 2
    return [d, x, idx_i, idx_j, w1, b1, w2, b2, centers, coeff, CUTOFF, n_two_way, n_out]


def value_and_grads(kernel, args, grad_out_seed=1):
    d = args[0].clone().requires_grad_(True)
    x = args[1].clone().requires_grad_(True)
    out = kernel(d, x, *args[2:])
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_out_seed), dtype=torch.float64)
    g = g.to(out.dtype)
    grad_d, grad_x = torch.autograd.grad(out, [d, x], g)
    return out.detach(), grad_d, grad_x


LAYOUTS = {
    "one_way": dict(n_two_way=0),                       # full edge list, or LAMMPS ghost edges
    "pairs": dict(n_two_way=300, n_atoms=30),           # every edge an unordered pair
    "mixed": dict(n_two_way=100),                       # LAMMPS: local pairs, then ghost edges
    "no_edges": dict(n_edges=0, n_two_way=0),
    "wide": dict(features=128, hidden=128, n_rbf=20, n_edges=700, n_two_way=350),  # several blocks
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fused_equals_reference_float64(layout):
    args = case(torch.float64, **LAYOUTS[layout])
    fused = value_and_grads(FusedConvolution(), args)
    reference = value_and_grads(ReferenceConvolution(), args)
    for a, b in zip(fused, reference):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", ["mixed", "wide"])
def test_fused_float32_within_rounding_of_float64_reference(layout):
    args64 = case(torch.float64, **LAYOUTS[layout])
    args32 = [a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args64]
    fused = value_and_grads(FusedConvolution(), args32)
    reference = value_and_grads(ReferenceConvolution(), args64)
    for a, b in zip(fused, reference):
        scale = float(b.abs().max())
        assert float((a.double() - b).abs().max()) <= 1e-4 * scale


def test_second_derivatives_and_weight_gradients_by_finite_differences():
    args = case(torch.float64, n_edges=40, n_atoms=8, n_out=6, n_two_way=15, features=5, hidden=4, n_rbf=6)
    d, x = args[0].requires_grad_(True), args[1].requires_grad_(True)
    op = torch.ops.mlpot.cfconv
    assert torch.autograd.gradcheck(lambda d, x: op(d, x, *args[2:]), (d, x))
    assert torch.autograd.gradgradcheck(lambda d, x: op(d, x, *args[2:]), (d, x))
    weights = tuple(w.requires_grad_(True) for w in args[4:8])
    assert torch.autograd.gradcheck(lambda *w: op(args[0], args[1], args[2], args[3], *w, *args[8:]), weights)


def force_training_gradients(kernel, args, seed=2):
    """Parameter gradients of a force-matching loss through two convolutions in a row (as in
    training: forces with create_graph, then loss.backward restricted to the parameters), with
    features that depend on both the positions and the parameters."""
    g = torch.Generator().manual_seed(seed)
    d0, x0 = args[0], args[1]
    n_edges, dtype = d0.shape[0], d0.dtype
    positions = (d0 + 0.0).requires_grad_(True)            # one "coordinate" per edge
    mix = torch.randn(x0.shape[1], x0.shape[1], generator=g, dtype=dtype) / 4
    h = x0.clone().requires_grad_(True)                     # an embedding (a parameter)
    weights = [w.clone().requires_grad_(True) for w in args[4:8]]
    d = positions * 1.0
    x = torch.tanh(h @ mix)
    first = kernel(d, x, args[2], args[3], *weights, *args[8:])
    if args[11] == n_edges or args[12] == x0.shape[0]:      # output rows can feed the next call
        x2 = torch.tanh(torch.cat([first, x[first.shape[0]:]]) @ mix)
        out = kernel(d, x2, args[2], args[3], *weights, *args[8:])
    else:
        out = first
    energy = torch.nn.functional.softplus(out).sum()
    forces = -torch.autograd.grad(energy, positions, create_graph=True)[0]
    target = torch.randn(forces.shape, generator=g, dtype=dtype)
    loss = 0.01 * energy.square() + (forces - target).square().sum()
    params = [h] + weights
    return [energy.detach(), forces.detach()] + list(torch.autograd.grad(loss, params))


@pytest.mark.parametrize("layout", ["one_way", "pairs", "mixed", "no_edges", "wide"])
def test_force_training_gradients_equal_reference_float64(layout):
    """The hand-written derivatives of the first derivatives (training on forces) against
    PyTorch's double backward of the reference formulation."""
    args = case(torch.float64, **LAYOUTS[layout])
    fused = force_training_gradients(FusedConvolution(), args)
    reference = force_training_gradients(ReferenceConvolution(), args)
    for a, b in zip(fused, reference):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_first_order_weight_gradients_equal_reference():
    """Energy-only training: hand-written weight gradients without a kept graph."""
    args = case(torch.float64, **LAYOUTS["mixed"])
    results = []
    for kernel in (FusedConvolution(), ReferenceConvolution()):
        weights = [w.clone().requires_grad_(True) for w in args[4:8]]
        x = args[1].clone().requires_grad_(True)
        out = kernel(args[0], x, args[2], args[3], *weights, *args[8:])
        results.append(torch.autograd.grad(out.sin().sum(), [x] + weights))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


def test_gradient_of_the_gradient_by_finite_differences():
    """gradgradcheck with the weights: the hand-written second derivatives in the output
    gradient, x and the weights (d is differentiated through the composite formulation)."""
    args = case(torch.float64, n_edges=40, n_atoms=8, n_out=6, n_two_way=15, features=5, hidden=4, n_rbf=6)
    d = args[0].clone().requires_grad_(True)
    op = torch.ops.mlpot.cfconv

    def forces_then_weights(x, w1, b1, w2, b2):
        out = op(d, x, args[2], args[3], w1, b1, w2, b2, *args[8:])
        return torch.autograd.grad(out.sin().sum(), d, create_graph=True)[0]

    inputs = tuple(t.clone().requires_grad_(True) for t in [args[1]] + args[4:8])
    assert torch.autograd.gradcheck(forces_then_weights, inputs)


def test_all_second_derivatives_with_trained_weights_by_finite_differences():
    """gradgradcheck in d, x and the weights together: with trained weights the operator is two
    autograd nodes (filter network, messages); a second derivative in d and third derivatives
    take the composite formulation, which must then route the weights' share through the weights."""
    args = case(torch.float64, n_edges=30, n_atoms=7, n_out=5, n_two_way=12, features=4, hidden=3, n_rbf=5)
    op = torch.ops.mlpot.cfconv
    inputs = tuple(t.clone().requires_grad_(True) for t in [args[0], args[1]] + args[4:8])

    def conv(d, x, w1, b1, w2, b2):
        return op(d, x, args[2], args[3], w1, b1, w2, b2, *args[8:])

    assert torch.autograd.gradcheck(conv, inputs)
    assert torch.autograd.gradgradcheck(conv, inputs)


@pytest.mark.parametrize("layout", ["pairs", "mixed"])
def test_fixed_weights_gradient_of_forces_in_features_equals_reference(layout):
    """Weights fixed (an exported model): one node; the derivative of a force expression in the
    features (not in d) takes the hand-written second derivatives."""
    args = case(torch.float64, **LAYOUTS[layout])
    results = []
    for kernel in (FusedConvolution(), ReferenceConvolution()):
        d = args[0].clone().requires_grad_(True)
        x = args[1].clone().requires_grad_(True)
        out = kernel(d, x, *args[2:])
        grad_d = torch.autograd.grad(out.sin().sum(), d, create_graph=True)[0]
        results.append(torch.autograd.grad(grad_d.square().sum(), x))
    torch.testing.assert_close(results[0], results[1], rtol=1e-10, atol=1e-10)


def test_layers_sharing_weights_get_each_contribution_once():
    """Two convolutions in a row with the same weights requiring grad (the composite backward
    must not follow the graph into the earlier call)."""
    args = case(torch.float64, n_two_way=0, n_out=40)
    weights = [w.clone().requires_grad_(True) for w in args[4:8]]
    results = []
    for kernel in (FusedConvolution(), ReferenceConvolution()):
        d = args[0].clone().requires_grad_(True)
        first = kernel(d, args[1], args[2], args[3], *weights, *args[8:])
        second = kernel(d, first, args[2], args[3], *weights, *args[8:])
        results.append(torch.autograd.grad(second.square().sum(), [d] + weights))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_many_threads_same_result():
    args = case(torch.float64, **LAYOUTS["wide"])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = value_and_grads(FusedConvolution(), args)
        torch.set_num_threads(max(2, before))
        many = value_and_grads(FusedConvolution(), args)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, many):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.__setitem__(1, a[1].float()), "dtype"),
    (lambda a: a.__setitem__(2, a[2].clone().fill_(29).index_fill_(0, torch.tensor([0]), 35)), "idx_i must be < n_out"),
    (lambda a: a.__setitem__(3, a[3].clone().index_fill_(0, torch.tensor([5]), 40)), "idx_j must be < x.size(0)"),
    (lambda a: a.__setitem__(3, a[3].clone().index_fill_(0, torch.tensor([0]), 35)), "two-way edges need idx_j < n_out"),
    (lambda a: a.__setitem__(6, a[6][:, :5]), "weight shapes"),
    (lambda a: a.__setitem__(11, 301), "n_two_way out of range"),
])
def test_bad_inputs_are_named(change, message):
    args = case(torch.float64)
    change(args)
    with pytest.raises(RuntimeError, match=re.escape(message)):
        torch.ops.mlpot.cfconv(*args)


def test_written_out_operators_name_bad_inputs():
    """The operators of the written-out forces (cfconv_messages, cfconv_filters, the tabulated
    messages and gradient) name what is wrong with their inputs."""
    d = torch.rand(6, dtype=torch.float64) + 1.0
    x = torch.randn(4, 5, dtype=torch.float64)
    filt = torch.randn(6, 5, dtype=torch.float64)
    i, j = torch.tensor([0, 1, 2, 3, 0, 1]), torch.tensor([1, 0, 3, 2, 4, 1])   # j = 4: out of range
    with pytest.raises(RuntimeError, match="idx_j must be < x.size"):
        torch.ops.mlpot.cfconv_messages(d, x, i, j, filt, 4.0, 0, 4, True)
    with pytest.raises(RuntimeError, match="the filter must be"):
        torch.ops.mlpot.cfconv_messages(d, x, i, j.clamp(max=3), filt[:, :3], 4.0, 0, 4, True)
    w1 = torch.randn(2, 3, 7, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="weight shapes do not match"):
        torch.ops.mlpot.cfconv_filters(d, w1, torch.zeros(2, 3, dtype=torch.float64),
                                       torch.randn(2, 5, 3, dtype=torch.float64), torch.zeros(2, 5, dtype=torch.float64),
                                       torch.linspace(0, 4, 6, dtype=torch.float64), -1.0, 4.0)
    table = torch.randn(10, 30, dtype=torch.float64)   # 10 intervals of 0.4 Å, 6F coefficients
    with pytest.raises(RuntimeError, match="idx_j must be < x.size"):
        torch.ops.mlpot.cfconv_tabulated_messages(d, x, i, j, table, 0.4, 4.0, 0, 4, True)
    with pytest.raises(RuntimeError, match="table must be"):
        torch.ops.mlpot.cfconv_tabulated_messages(d, x, i, j.clamp(max=3), table[:, :12], 0.4, 4.0, 0, 4, True)
    with pytest.raises(RuntimeError, match="go must be"):
        torch.ops.mlpot.cfconv_tabulated_gradient(d, x, i, j.clamp(max=3), table, x[:3], 0.4, 4.0, 0, 4, True)


def test_swapping_kernels_keeps_state_dict_and_scripts():
    from mlpot.model.config import ModelConfig, build_potential

    potential = build_potential(ModelConfig(n_atom_basis=8, n_filters=8, n_interactions=2, n_rbf=5, cutoff=3.0), [1, 8])
    keys = set(potential.state_dict())
    assert registry.use_fused_kernels(potential) == 2 and registry.uses_fused_kernels(potential)
    assert set(potential.state_dict()) == keys
    torch.jit.script(potential)
    assert registry.use_fused_kernels(potential, fused=False) == 2 and not registry.uses_fused_kernels(potential)


# --- tabulated filters ---------------------------------------------------------------------

def tabulated(args, spacing, cubic=False):
    """The tabulated kernel of the case's filter network: quintic, or cubic ([M + 1, 2F] rows
    [W(d_k), h W'(d_k)]: what files exported before the quintic tables hold)."""
    from mlpot.kernels.convolutions import TabulatedConvolution
    from mlpot.kernels.filter_tables import filter_table, smooth_filter

    table, h = filter_table(*args[4:11], spacing)
    if cubic:
        knots = torch.arange(table.shape[0] + 1, dtype=torch.float64) * h
        values, slopes = torch.func.jvp(lambda d: smooth_filter(d, *[a.double() for a in args[4:9]], *args[9:11]),
                                        (knots,), (torch.ones_like(knots),))
        table = torch.cat([values, h * slopes], dim=1)
    return TabulatedConvolution(table.to(args[1].dtype), h)


class CompositeTabulated(torch.nn.Module):
    """The tabulated kernel through its composite ATen formulation (the op's own reference)."""

    def __init__(self, kernel):
        super().__init__()
        self.kernel = kernel

    def forward(self, d, x, idx_i, idx_j, *rest):
        cutoff, n_two_way, n_out = rest[6], rest[7], rest[8]
        return torch.ops.mlpot.cfconv_tabulated_composite(d, x, idx_i, idx_j, self.kernel.table, self.kernel.spacing,
                                                          cutoff, n_two_way, n_out)


@pytest.mark.parametrize("cubic", [False, True], ids=["quintic", "cubic"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_tabulated_kernel_equals_its_composite_formulation(layout, cubic):
    args = case(torch.float64, **LAYOUTS[layout])
    kernel = tabulated(args, 0.05, cubic)
    for a, b in zip(value_and_grads(kernel, args), value_and_grads(CompositeTabulated(kernel), args)):
        # the quintic basis sums terms up to ~60× the result: float64 rounding of the output's scale
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11 * (float(b.abs().max()) if b.numel() else 1.0))


def test_tabulated_converges_to_the_network_filter():
    """Quintic Hermite: values O(h⁶), slopes O(h⁵); at 0.02 Å within 1e-8 of the exact kernel
    (values and both gradients, relative to their largest entries)."""
    args = case(torch.float64, **LAYOUTS["wide"])
    exact = value_and_grads(ReferenceConvolution(), args)
    errors = []
    for spacing in (0.08, 0.04, 0.02):
        approx = value_and_grads(tabulated(args, spacing), args)
        errors.append([float((a - b).abs().max() / b.abs().max()) for a, b in zip(approx, exact)])
    assert max(errors[-1]) < 1e-8
    for coarse, fine in zip(errors[0], errors[1]):
        assert fine < coarse / 20         # at least fifth order when halving h (2⁵ = 32)


def test_tabulation_error_and_spacing_choice():
    """tabulation_error measures the spline against the network (a spoiled table is caught);
    choose_tables refines the spacing until the tolerance is met, or keeps a given one."""
    from mlpot.kernels.filter_tables import choose_tables, filter_table, tabulation_error

    args = case(torch.float64, **LAYOUTS["wide"])
    network, coeff = list(args[4:8]) + [args[8]], args[9]
    table, h = filter_table(*args[4:11], 0.02)
    value_error, slope_error = tabulation_error(network, coeff, CUTOFF, table, h)
    assert value_error < 1e-9 and slope_error < 1e-7
    spoiled = table.clone()
    spoiled[40, 2] += 1e-5 * float(table[:, :table.shape[1] // 6].abs().max())
    assert tabulation_error(network, coeff, CUTOFF, spoiled, h)[0] > 1e-6
    tables, used, value_error, slope_error = choose_tables([network], coeff, CUTOFF, tolerance=1e-10)
    assert used < 0.02 and max(value_error, slope_error) <= 1e-10 and tables[0].shape[0] == round(CUTOFF / used)
    finest = choose_tables([network], coeff, CUTOFF, tolerance=0.0)     # unreachable: stops at the finest
    assert finest[1] == pytest.approx(0.0025, rel=0.01) and finest[3] > 0
    assert choose_tables([network], coeff, CUTOFF, spacing=0.05)[1] == pytest.approx(CUTOFF / round(CUTOFF / 0.05))


def test_tabulated_second_derivatives_by_finite_differences():
    args = case(torch.float64, n_edges=40, n_atoms=8, n_out=6, n_two_way=15, features=5, hidden=4, n_rbf=6)
    kernel = tabulated(args, 0.1)
    d, x = args[0].requires_grad_(True), args[1].requires_grad_(True)
    assert torch.autograd.gradcheck(lambda d, x: kernel(d, x, *args[2:]), (d, x))
    assert torch.autograd.gradgradcheck(lambda d, x: kernel(d, x, *args[2:]), (d, x))


def test_tabulated_table_must_span_the_cutoff():
    args = case(torch.float64)
    kernel = tabulated(args, 0.05)
    with pytest.raises(RuntimeError, match="intervals must span"):
        torch.ops.mlpot.cfconv_tabulated(args[0], args[1], args[2], args[3], kernel.table, 0.04, CUTOFF, 100, 30)


def test_off_cpu_formulations_match_the_operators():
    """What a fused or tabulated file runs on a GPU (plain PyTorch, no operator) equals the
    operators; checked here on the CPU by calling those formulations directly."""
    from mlpot.model.representations.convolution import cutoff_filter, send_messages
    from mlpot.kernels.filter_tables import spline_filter

    args = case(torch.float64, **LAYOUTS["mixed"])
    d, x, idx_i, idx_j = args[:4]
    n_two_way, n_out = args[11], args[12]
    exact = send_messages(x, cutoff_filter(d, *args[4:11]), idx_i, idx_j, n_two_way, n_out)
    torch.testing.assert_close(exact, torch.ops.mlpot.cfconv(*args), rtol=1e-12, atol=1e-12)
    kernel = tabulated(args, 0.05)
    spline = send_messages(x, spline_filter(d, kernel.table, kernel.spacing, CUTOFF), idx_i, idx_j, n_two_way, n_out)
    torch.testing.assert_close(spline, kernel(*args), rtol=1e-12, atol=1e-12)
