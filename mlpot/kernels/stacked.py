"""A committee of exported SchNet models evaluated as one stacked model.

M members of the same architecture (the members of one `mlpot train` run with
training.ensemble) run the same sequence of operators on tensors of the same shapes, so their
weights can be stacked along a leading member axis [M, ...] and every dense layer becomes one
batched matrix product (torch.bmm) for all members. Small systems, where an MD step costs
little arithmetic and many operator calls, then pay the fixed cost of each call once instead of
M times. The distances, the symmetric-pair reduction and the filter networks of all members and
interactions (one torch.ops.mlpot.cfconv_filters pass over M·T stacked filter networks) are
shared; the convolutions themselves run member by member (their gradient sums over features,
which must stay per member).

The arithmetic is mlpot.kernels.written_out.ExportedSchNet's written-out chain rule, member by member
the same function (tested against the members evaluated one by one to float rounding).

StackedSchNet.forward(positions [N, 3] Å, atomic_numbers [N], edge_index [2, E],
                      shift_vectors [E, 3] Å, n_local: int, compute_virial: bool)
  -> {"energy": [M] eV, "forces": [M, N, 3] eV/Å, "energies": [M, N] eV, "virial": [M, 3, 3] eV}
"""

from typing import Dict, List, Optional

import torch
from torch import nn

from mlpot.nn.activations import shifted_softplus
from mlpot.nn.edge_gradients import forces_and_virial, gradient_along_edges
from mlpot.kernels.written_out import edges_for_messages


def _child(module, name: str):
    return getattr(module, name)


def _interactions(module) -> list:
    rep = module.potential.representation
    return [_child(rep.interactions, str(t)) for t in range(int(rep.n_interactions))]


def _head_layers(module) -> list:
    return [_child(module.potential.energy_head.net, str(k)) for k in range(len(module.head_activated))]


def _repulsion(module) -> tuple:
    """(element_index [119], radius [S, S] Å, strength [] eV) of a loaded member; files exported
    before the repulsion existed have none (strength 0)."""
    potential = module.potential
    if hasattr(potential, "repulsion"):
        r = potential.repulsion
        return r.element_index, r.radius, r.strength
    index = torch.zeros(119, dtype=torch.long)
    return index, torch.zeros((1, 1), dtype=potential.atomref.dtype), torch.zeros((), dtype=potential.atomref.dtype)


def stackable(modules) -> Optional[str]:
    """None when the loaded model files `modules` can be stacked, else why not (one line)."""
    if len(modules) < 2:
        return "a single model"
    first = modules[0]
    if any(getattr(m, "original_name", "") != "ExportedSchNet" for m in modules):
        return "not all members are SchNet models with written-out forces (fused or tabulated kernels)"

    def signature(m):
        rep = m.potential.representation
        blocks = _interactions(m)
        return (bool(m.tabulated), int(rep.n_interactions), float(rep.cutoff), bool(rep.use_pairs),
                float(rep.radial_basis.coeff), tuple(rep.radial_basis.centers.tolist()),
                tuple(m.head_activated), tuple(tuple(layer.weight.shape) for layer in _head_layers(m)),
                tuple(tuple(b.in2f.weight.shape) for b in blocks), tuple(m.filter_w1.shape),
                rep.embedding.weight.dtype, tuple(_repulsion(m)[0].tolist()), tuple(_repulsion(m)[1].shape))

    reference = signature(first)
    for m in modules[1:]:
        if signature(m) != reference:
            return "the members differ in architecture"
    return None


class StackedSchNet(nn.Module):
    """The members' weights stacked [M, ...]; built from loaded ExportedSchNet modules (CPU)."""

    w_in: List[torch.Tensor]
    w_1: List[torch.Tensor]
    b_1: List[torch.Tensor]
    w_2: List[torch.Tensor]
    b_2: List[torch.Tensor]
    head_w: List[torch.Tensor]
    head_b: List[torch.Tensor]
    tables: List[torch.Tensor]
    table_spacing: List[float]

    def __init__(self, modules):
        super().__init__()
        reason = stackable(modules)
        if reason is not None:
            raise ValueError(f"cannot stack these committee members: {reason}")
        first = modules[0]
        rep = first.potential.representation
        self.n_members: int = len(modules)
        self.n_interactions: int = int(rep.n_interactions)
        self.cutoff: float = float(rep.cutoff)
        self.use_pairs: bool = bool(rep.use_pairs)
        self.coeff: float = float(rep.radial_basis.coeff)
        self.tabulated: bool = bool(first.tabulated)
        self.head_activated: List[bool] = [bool(a) for a in first.head_activated]
        self.register_buffer("centers", rep.radial_basis.centers.clone())

        def stack(get) -> torch.Tensor:
            return torch.stack([get(m).detach() for m in modules]).contiguous()

        self.register_buffer("embedding", stack(lambda m: m.potential.representation.embedding.weight))
        # transposed weights W^T [M, in, out] for the forward h W^T; the backward uses W [M, out, in]
        blocks = [_interactions(m) for m in modules]
        self.w_in = []
        self.w_1 = []
        self.b_1 = []
        self.w_2 = []
        self.b_2 = []
        for t in range(self.n_interactions):
            member_blocks = [b[t] for b in blocks]
            self.w_in.append(torch.stack([b.in2f.weight.detach() for b in member_blocks]).contiguous())
            dense1 = [_child(b.f2out, "0") for b in member_blocks]
            dense2 = [_child(b.f2out, "1") for b in member_blocks]
            self.w_1.append(torch.stack([d.weight.detach() for d in dense1]).contiguous())
            self.b_1.append(torch.stack([d.bias.detach() for d in dense1])[:, None, :].contiguous())
            self.w_2.append(torch.stack([d.weight.detach() for d in dense2]).contiguous())
            self.b_2.append(torch.stack([d.bias.detach() for d in dense2])[:, None, :].contiguous())
        heads = [_head_layers(m) for m in modules]
        self.head_w = []
        self.head_b = []
        for k in range(len(self.head_activated)):
            self.head_w.append(torch.stack([h[k].weight.detach() for h in heads]).contiguous())
            self.head_b.append(torch.stack([h[k].bias.detach() for h in heads])[:, None, :].contiguous())
        # all members' filter networks in one cfconv_filters pass: [M·T, ...], member-major
        empty = torch.zeros(0, dtype=self.embedding.dtype)
        for name in ("filter_w1", "filter_b1", "filter_w2", "filter_b2"):
            self.register_buffer(name, empty if self.tabulated else
                                 torch.cat([getattr(m, name).detach() for m in modules]).contiguous())
        self.tables = [m.tables.detach().contiguous() for m in modules] if self.tabulated else []
        self.table_spacing = [float(m.table_spacing) for m in modules]
        self.register_buffer("energy_scale", stack(lambda m: m.potential.energy_scale).reshape(-1, 1))
        self.register_buffer("energy_shift", stack(lambda m: m.potential.energy_shift).reshape(-1, 1))
        self.register_buffer("atomref", stack(lambda m: m.potential.atomref))
        # pair repulsion (mlpot.nn.pair_repulsion): the members share the element index
        self.register_buffer("element_index", _repulsion(first)[0].clone())
        self.register_buffer("radius", stack(lambda m: _repulsion(m)[1]).reshape(len(modules), -1))
        self.register_buffer("strength", stack(lambda m: _repulsion(m)[2]).reshape(-1, 1))

    def forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                shift_vectors: torch.Tensor, n_local: int, compute_virial: bool) -> Dict[str, torch.Tensor]:
        n_members = self.n_members
        n_atoms = positions.shape[0]
        idx_i, idx_j, vectors, n_two_way = edges_for_messages(positions, edge_index, shift_vectors, n_atoms,
                                                              self.use_pairs)
        d = torch.linalg.norm(vectors, dim=1)
        dc = d.to(self.embedding.dtype)
        filters, slopes = self.filter_w1, self.filter_w1   # unused with tables
        if not self.tabulated:
            filters, slopes = torch.ops.mlpot.cfconv_filters(dc, self.filter_w1, self.filter_b1, self.filter_w2,
                                                             self.filter_b2, self.centers, self.coeff, self.cutoff)
        n_t = self.n_interactions

        h = self.embedding.index_select(1, atomic_numbers)          # [M, N, F]
        xs: List[torch.Tensor] = []
        pre: List[torch.Tensor] = []
        for t in range(n_t):
            x = torch.bmm(h, self.w_in[t].transpose(1, 2))
            ys: List[torch.Tensor] = []
            for m in range(n_members):
                if self.tabulated:
                    ys.append(torch.ops.mlpot.cfconv_tabulated_messages(
                        dc, x[m], idx_i, idx_j, self.tables[m][t], self.table_spacing[m], self.cutoff, n_two_way,
                        n_atoms, t == 0 and m == 0))
                else:
                    ys.append(torch.ops.mlpot.cfconv_messages(dc, x[m], idx_i, idx_j, filters[m * n_t + t],
                                                              self.cutoff, n_two_way, n_atoms, t == 0 and m == 0))
            y = torch.stack(ys)
            a = torch.baddbmm(self.b_1[t], y, self.w_1[t].transpose(1, 2))
            h = h + torch.baddbmm(self.b_2[t], shifted_softplus(a), self.w_2[t].transpose(1, 2))
            xs.append(x)
            pre.append(a)
        head_pre: List[torch.Tensor] = []
        z = h
        for k in range(len(self.head_w)):
            z = torch.baddbmm(self.head_b[k], z, self.head_w[k].transpose(1, 2))
            head_pre.append(z)
            if self.head_activated[k]:
                z = shifted_softplus(z)
        local = (torch.arange(n_atoms, device=positions.device) < n_local).to(z.dtype)
        pair_energies, pair_grad = torch.ops.mlpot.pair_repulsion(d, atomic_numbers, idx_i, idx_j, self.element_index,
                                                                  self.radius, self.strength.reshape(-1), local,
                                                                  n_two_way)                    # [M, N], [M, E]
        energies = (self.energy_scale * z[:, :, 0] + self.energy_shift + self.atomref.index_select(1, atomic_numbers)
                    + pair_energies.to(z.dtype))
        if n_local >= n_atoms:
            energy = energies.sum(1)
            g = self.energy_scale[:, :, None].expand(n_members, n_atoms, 1)
        else:
            energy = (energies * local).sum(1)
            g = self.energy_scale[:, :, None] * local[None, :, None]
        for k in range(len(self.head_w) - 1, -1, -1):
            if self.head_activated[k]:
                g = torch.ops.aten.softplus_backward(g, head_pre[k], 1.0, 20.0)
            g = torch.bmm(g, self.head_w[k])
        grad_d = pair_grad.to(dc.dtype)
        for t in range(n_t - 1, -1, -1):
            g_y = torch.bmm(torch.ops.aten.softplus_backward(torch.bmm(g, self.w_2[t]), pre[t], 1.0, 20.0),
                            self.w_1[t])
            g_xs: List[torch.Tensor] = []
            for m in range(n_members):
                if self.tabulated:
                    g_d, g_x = torch.ops.mlpot.cfconv_tabulated_gradient(
                        dc, xs[t][m], idx_i, idx_j, self.tables[m][t], g_y[m], self.table_spacing[m], self.cutoff,
                        n_two_way, n_atoms, t > 0)
                else:
                    g_d, g_x = torch.ops.mlpot.cfconv_gradient(dc, xs[t][m], idx_i, idx_j, filters[m * n_t + t],
                                                               slopes[m * n_t + t], g_y[m], self.cutoff, n_two_way,
                                                               n_atoms, t > 0)
                grad_d[m] += g_d
                g_xs.append(g_x)
            if t > 0:
                g = g + torch.bmm(torch.stack(g_xs), self.w_in[t])
        grad_vectors = gradient_along_edges(vectors, grad_d, d)          # [M, E, 3]
        forces, virial = forces_and_virial(vectors, grad_vectors, idx_i, idx_j, n_atoms, compute_virial)
        return {"energy": energy, "forces": forces, "energies": energies, "virial": virial}


def stacked_committee(modules) -> Optional[torch.jit.ScriptModule]:
    """The scripted StackedSchNet of loaded model files, or None where they cannot be stacked."""
    if stackable(modules) is not None:
        return None
    return torch.jit.script(StackedSchNet(modules).eval())
