"""SchNet's energy, forces and virial with the chain rule written out: the one written-out
engine, over a member axis M ≥ 1 (a single exported model is M = 1, a stacked committee M > 1).

`WrittenOutSchNet` holds the weights of M models of one architecture stacked [M, ...]; for M > 1 every dense
layer is one batched product for all members, so a committee pays each operator call once
instead of M times (small systems: many calls, little arithmetic). The distances, the pair
reduction and the filter networks of all members and interactions (one cfconv_filters pass over
M·T stacked networks) are shared; the convolutions run member by member (their gradient sums over
features, which must stay per member). Its steps (embed, layer_forward, layer_backward, head,
head_backward) are the whole-graph forward and, at M = 1, LAMMPS' per-layer exchange path
(`ExportedSchNet.interaction_forward` / `_backward`, `readout_gradient`): one implementation.

An exported SchNet with fused or tabulated kernels and an atom-wise energy head (the usual model) runs
`ExportedSchNet.forward` (the engine at M = 1): the layers' forward keeps what their derivatives need (every
interaction's filter and slope per edge, from one torch.ops.mlpot.cfconv_filters pass; the
pre-activations of the atom-wise layers; with tabulated filters, torch.ops.mlpot.cfconv_tabulated_messages
evaluates the splines inside the message loop instead), then the gradient of the energy runs back through the
same layers as matrix products and torch.ops.mlpot.cfconv_gradient — no autograd graph is
recorded or walked.
For small molecules that graph was most of the cost of an MD step (~900 operator calls for
ethanol). The energy is the same function of the same modules; forces are −∂E/∂r and the
virial −∂E/∂ε exactly as autograd gives them (tested to float64 rounding against
`autograd_forward`, which other devices, inputs that require grad and the Hessian still use).

With h_{t+1} = h_t + W₂ ssp(W₁ y_t + b₁) + b₂ and y_t = cfconv(d, W_in h_t), energies
E_i = scale · head(h_T)_i + shift + E_ref[Z_i] + (pair repulsion shares) and E = Σ_{i < n_local} E_i
(∂E/∂d starts from the repulsion's φ' (mlpot.model.nn.pair_repulsion)):
  g_h ← ∂E/∂h_T through the head; for t = T−1 .. 0: g_y = W₁ᵀ(ssp'(W₁ y_t + b₁) ⊙ W₂ᵀ g_h),
  (∂E/∂d, g_x) = cfconv_gradient(g_y), g_h ← g_h + W_inᵀ g_x;
  ∂E/∂r_e = (∂E/∂d_e) r_e / d_e per edge e = (i, j) with r_e = r_j − r_i + S_e, so
  F_i += ∂E/∂r_e and F_j −= ∂E/∂r_e; virial = −½ (M + Mᵀ), M = Σ_e r_e ⊗ ∂E/∂r_e; asked for,
  the per-atom virial −½ r_e ⊗ ∂E/∂r_e to atoms i and j of every edge (atom_virial_of_edges).
"""
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from mlpot.kernels.convolutions import FusedConvolution, TabulatedConvolution
from mlpot.model.nn import Dense, ShiftedSoftplus
from mlpot.model.nn.activations import shifted_softplus
from mlpot.model.nn.edge_gradients import atom_virial_of_edges, forces_and_virial, gradient_along_edges
from mlpot.model.exported import ExportedPerLayer
from mlpot.model.heads import Atomwise
from mlpot.model.representations.schnet import SchNet


def written_out_forces_apply(potential) -> bool:
    """True for a SchNet potential this module can differentiate: fused or tabulated convolution
    kernels (all interactions alike), the standard interaction block, an Atomwise energy head of Dense layers with shifted-softplus
    or no activation, no dipole head."""
    rep = potential.representation
    if not isinstance(rep, SchNet) or potential.dipole_head is not None or not isinstance(potential.energy_head, Atomwise):
        return False
    kinds = {type(block.convolution) for block in rep.interactions}
    if kinds != {FusedConvolution} and kinds != {TabulatedConvolution}:
        return False
    if kinds == {TabulatedConvolution} and len({block.convolution.table.shape for block in rep.interactions}) != 1:
        return False
    for block in rep.interactions:
        if not (block.in2f.bias is None
                and isinstance(block.f2out[0].activation, ShiftedSoftplus)
                and isinstance(block.f2out[1].activation, nn.Identity)
                and isinstance(block.filter_network[0].activation, ShiftedSoftplus)
                and isinstance(block.filter_network[1].activation, nn.Identity)):
            return False
    return all(isinstance(layer, Dense) and isinstance(layer.activation, (ShiftedSoftplus, nn.Identity))
               for layer in potential.energy_head.net)


def edges_for_messages(positions: torch.Tensor, edge_index: torch.Tensor, shift_vectors: torch.Tensor,
                       n_atoms: int, use_pairs: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(idx_i, idx_j, edge vectors r_j − r_i + S [E', 3], n_two_way): with use_pairs and a
    symmetric list, one edge per unordered pair, each sending messages both ways (n_two_way = E');
    else all edges, one way (n_two_way = 0). The rule and checksum of
    schnet.half_of_symmetric_list, in one compiled pass (torch.ops.mlpot.canonical_edges)."""
    idx_i, idx_j = edge_index[0], edge_index[1]
    vectors = positions[idx_j] - positions[idx_i] + shift_vectors
    n_two_way = 0
    if use_pairs:
        index, symmetric = torch.ops.mlpot.canonical_edges(idx_i, idx_j, vectors, n_atoms)
        if symmetric:
            vectors = vectors.index_select(0, index)
            idx_i, idx_j = idx_i.index_select(0, index), idx_j.index_select(0, index)
            n_two_way = index.shape[0]
    return idx_i, idx_j, vectors, n_two_way


def _interactions(module) -> list:
    """The interaction blocks of a written-out module's potential (eager or loaded from a file)."""
    rep = module.potential.representation
    return [getattr(rep.interactions, str(t)) for t in range(int(rep.n_interactions))]


def _head_layers(module) -> list:
    return [getattr(module.potential.energy_head.net, str(k)) for k in range(len(module.head_activated))]


def _repulsion(module) -> tuple:
    """(element_index [119], radius [S, S] Å, strength [] eV) of a member; files exported before
    the repulsion existed have none (strength 0)."""
    potential = module.potential
    if hasattr(potential, "repulsion"):
        r = potential.repulsion
        return r.element_index, r.radius, r.strength
    index = torch.zeros(119, dtype=torch.long)
    return index, torch.zeros((1, 1), dtype=potential.atomref.dtype), torch.zeros((), dtype=potential.atomref.dtype)


def stackable(modules) -> Optional[str]:
    """None when the loaded model files `modules` can be one WrittenOutSchNet with M > 1, else
    why not (one line)."""
    if len(modules) < 2:
        return "a single model"
    if any(getattr(m, "original_name", type(m).__name__) != "ExportedSchNet" for m in modules):   # scripted or eager
        return "not all members are SchNet models with written-out forces (fused or tabulated kernels)"

    def signature(m):
        rep = m.potential.representation
        blocks = _interactions(m)
        return (bool(m.tabulated), int(rep.n_interactions), float(rep.cutoff), bool(rep.use_pairs),
                float(rep.radial_basis.coeff), tuple(rep.radial_basis.centers.tolist()),
                tuple(m.head_activated), tuple(tuple(layer.weight.shape) for layer in _head_layers(m)),
                tuple(tuple(b.in2f.weight.shape) for b in blocks), tuple(m.filter_w1.shape),
                rep.embedding.weight.dtype, tuple(_repulsion(m)[0].tolist()), tuple(_repulsion(m)[1].shape))

    reference = signature(modules[0])
    if any(signature(m) != reference for m in modules[1:]):
        return "the members differ in architecture"
    return None


class WrittenOutSchNet(nn.Module):
    """The written-out chain rule (module docstring) for M members of one architecture; built from
    ExportedSchNet modules (eager, or loaded from files of any format version).

    Tensors carry the member axis only when M > 1: weights W [M, out, in] and features
    [M, N, F], every dense layer one batched product; at M = 1, W [out, in] and [N, F], plain
    matrix products (a batched product of one, and the indexing around it, cost 10-100 % more
    there: ethanol and water 192, 2026-12-07), and the weights are the model's own tensors (a
    file keeps one copy).

    forward(positions [N, 3] Å, atomic_numbers [N], edge_index [2, E], shift_vectors [E, 3] Å,
            n_local: int, compute_virial: bool, compute_atom_virial: bool = False)
      -> {"energy": [M] eV, "forces": [(M,) N, 3] eV/Å, "energies": [(M,) N] eV,
          "virial": [(M,) 3, 3] eV, "atom_virial": [N, 3, 3] eV (M = 1, when asked)}
    """

    w_in: List[torch.Tensor]
    w_1: List[torch.Tensor]
    b_1: List[torch.Tensor]
    w_2: List[torch.Tensor]
    b_2: List[torch.Tensor]
    head_w: List[torch.Tensor]
    head_b: List[torch.Tensor]
    tables: List[torch.Tensor]
    table_spacing: List[float]

    def __init__(self, members: list):
        super().__init__()
        if len(members) > 1:
            reason = stackable(members)
            if reason is not None:
                raise ValueError(f"cannot stack these committee members: {reason}")
        first = members[0]
        rep = first.potential.representation
        single = len(members) == 1

        def stack(tensors: list) -> torch.Tensor:
            """[M, ...] of one tensor per member; at M = 1 the model's own tensor."""
            if single:
                return tensors[0].detach()
            return torch.stack([t.detach() for t in tensors]).contiguous()

        def stack_bias(tensors: list) -> torch.Tensor:
            """[M, 1, out] (broadcast over atoms in baddbmm); at M = 1 the bias [out]."""
            return stack(tensors) if single else stack(tensors)[:, None, :]

        self.n_members: int = len(members)
        self.n_interactions: int = int(rep.n_interactions)
        self.cutoff: float = float(rep.cutoff)
        self.use_pairs: bool = bool(rep.use_pairs)
        self.coeff: float = float(rep.radial_basis.coeff)
        self.tabulated: bool = bool(first.tabulated)
        self.head_activated: List[bool] = [bool(a) for a in first.head_activated]
        self.register_buffer("centers", rep.radial_basis.centers.detach())
        self.register_buffer("embedding", stack([m.potential.representation.embedding.weight for m in members]))
        blocks = [_interactions(m) for m in members]               # [member][t]
        dense = [[(getattr(b.f2out, "0"), getattr(b.f2out, "1")) for b in bs] for bs in blocks]
        steps = range(self.n_interactions)
        self.w_in = [stack([bs[t].in2f.weight for bs in blocks]) for t in steps]
        self.w_1 = [stack([ds[t][0].weight for ds in dense]) for t in steps]
        self.b_1 = [stack_bias([ds[t][0].bias for ds in dense]) for t in steps]
        self.w_2 = [stack([ds[t][1].weight for ds in dense]) for t in steps]
        self.b_2 = [stack_bias([ds[t][1].bias for ds in dense]) for t in steps]
        heads = [_head_layers(m) for m in members]                 # [member][k]
        self.head_w = [stack([hs[k].weight for hs in heads]) for k in range(len(self.head_activated))]
        self.head_b = [stack_bias([hs[k].bias for hs in heads]) for k in range(len(self.head_activated))]
        # all members' filter networks for one cfconv_filters pass: [M·T, ...], member-major
        for name in ("filter_w1", "filter_b1", "filter_w2", "filter_b2"):
            self.register_buffer(name, getattr(first, name).detach() if single else
                                 torch.cat([getattr(m, name).detach() for m in members]).contiguous())
        self.tables = [m.tables.detach() for m in members] if self.tabulated else []
        self.table_spacing = [float(m.table_spacing) for m in members]
        # energy_scale, energy_shift [M, 1] ([] at M = 1), atomref [M, Z] ([Z])
        self.register_buffer("energy_scale", stack([m.potential.energy_scale for m in members]).reshape(
            torch.Size([]) if single else (-1, 1)))
        self.register_buffer("energy_shift", stack([m.potential.energy_shift for m in members]).reshape(
            torch.Size([]) if single else (-1, 1)))
        self.register_buffer("atomref", stack([m.potential.atomref for m in members]))
        # pair repulsion (mlpot.model.nn.pair_repulsion; its operator takes [M, ...] at every M): the
        # members share the element index
        self.register_buffer("element_index", _repulsion(first)[0].detach())
        self.register_buffer("radius", torch.stack([_repulsion(m)[1].detach() for m in members]).reshape(
            len(members), -1))
        self.register_buffer("strength", torch.stack([_repulsion(m)[2].detach() for m in members]).reshape(-1))

    def _linear(self, x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor]) -> torch.Tensor:
        """x Wᵀ + b of x [(M,) n, in], W [(M,) out, in], b [(M, 1,) out] or None."""
        if self.n_members == 1:
            return nn.functional.linear(x, w, b)
        if b is None:
            return torch.bmm(x, w.transpose(1, 2))
        return torch.baddbmm(b, x, w.transpose(1, 2))

    def _matmul(self, g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """g W [(M,) n, in] of g [(M,) n, out], W [(M,) out, in]."""
        if self.n_members == 1:
            return g.mm(w)
        return torch.bmm(g, w)

    def _member(self, x: torch.Tensor, m: int) -> torch.Tensor:
        """Member m's slice of x [(M,) ...]."""
        return x if self.n_members == 1 else x[m]

    def _stacked(self, xs: List[torch.Tensor]) -> torch.Tensor:
        """The members' tensors as one [(M,) ...]."""
        return xs[0] if self.n_members == 1 else torch.stack(xs)

    def embed(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """h_0 [(M,) N, F] of atomic_numbers [N]."""
        return self.embedding.index_select(-2, atomic_numbers)

    def filters(self, dc: torch.Tensor, t: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Filters and slopes at distances dc [P] of every member and interaction [M·T, P, F]
        (t < 0), or of interaction t alone [1, P, F] (M = 1); empty with tables (evaluated inside
        the message loops)."""
        if self.tabulated:
            return self.filter_w1, self.filter_w1
        if t < 0:
            return torch.ops.mlpot.cfconv_filters(dc, self.filter_w1, self.filter_b1, self.filter_w2, self.filter_b2,
                                                  self.centers, self.coeff, self.cutoff)
        end = t + 1
        return torch.ops.mlpot.cfconv_filters(dc, self.filter_w1[t:end], self.filter_b1[t:end],
                                              self.filter_w2[t:end], self.filter_b2[t:end], self.centers,
                                              self.coeff, self.cutoff)

    def layer_forward(self, t: int, h: torch.Tensor, dc: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
                      filters: torch.Tensor, stride: int, row: int, n_out: int, n_two_way: int,
                      check_edges: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Interaction t of h_t [(M,) N, F]: (h_{t+1} [(M,) n_out, F], x = W_in h_t [(M,) N, F'],
        a = W₁ y_t + b₁ [(M,) n_out, F]); member m's filter is filters[m·stride + row]."""
        x = self._linear(h, self.w_in[t], None)
        ys: List[torch.Tensor] = []
        for m in range(self.n_members):
            check = check_edges and m == 0
            if self.tabulated:
                ys.append(torch.ops.mlpot.cfconv_tabulated_messages(dc, self._member(x, m), idx_i, idx_j,
                                                                    self.tables[m][t], self.table_spacing[m],
                                                                    self.cutoff, n_two_way, n_out, check))
            else:
                ys.append(torch.ops.mlpot.cfconv_messages(dc, self._member(x, m), idx_i, idx_j,
                                                          filters[m * stride + row], self.cutoff, n_two_way, n_out,
                                                          check))
        a = self._linear(self._stacked(ys), self.w_1[t], self.b_1[t])
        h_next = h.narrow(-2, 0, n_out) + self._linear(shifted_softplus(a), self.w_2[t], self.b_2[t])
        return h_next, x, a

    def layer_backward(self, t: int, g: torch.Tensor, x: torch.Tensor, a: torch.Tensor, dc: torch.Tensor,
                       idx_i: torch.Tensor, idx_j: torch.Tensor, filters: torch.Tensor, slopes: torch.Tensor,
                       stride: int, row: int, n_out: int, n_two_way: int,
                       want_h: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """(∂/∂d [(M,) P], ∂/∂h_t through the convolution [(M,) N, F] or empty) of Σ h_{t+1} · g
        for g [(M,) n_out, F] (the residual's g ⊕ 0 comes on top); x, a from layer_forward."""
        g_y = self._matmul(torch.ops.aten.softplus_backward(self._matmul(g, self.w_2[t]), a, 1.0, 20.0), self.w_1[t])
        g_ds: List[torch.Tensor] = []
        g_xs: List[torch.Tensor] = []
        for m in range(self.n_members):
            if self.tabulated:
                g_d, g_x = torch.ops.mlpot.cfconv_tabulated_gradient(dc, self._member(x, m), idx_i, idx_j,
                                                                     self.tables[m][t], self._member(g_y, m),
                                                                     self.table_spacing[m], self.cutoff, n_two_way,
                                                                     n_out, want_h)
            else:
                g_d, g_x = torch.ops.mlpot.cfconv_gradient(dc, self._member(x, m), idx_i, idx_j,
                                                           filters[m * stride + row], slopes[m * stride + row],
                                                           self._member(g_y, m), self.cutoff, n_two_way, n_out, want_h)
            g_ds.append(g_d)
            g_xs.append(g_x)
        g_h = self._matmul(self._stacked(g_xs), self.w_in[t]) if want_h else g_xs[0]
        return self._stacked(g_ds), g_h

    def head(self, h: torch.Tensor, atomic_numbers: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """(per-atom energies [(M,) n] eV without the repulsion, the head layers' pre-activations)
        of features h [(M,) n, F]."""
        head_pre: List[torch.Tensor] = []
        z = h
        for k in range(len(self.head_w)):
            z = self._linear(z, self.head_w[k], self.head_b[k])
            head_pre.append(z)
            if self.head_activated[k]:
                z = shifted_softplus(z)
        energies = self.energy_scale * z.select(-1, 0) + self.energy_shift + self.atomref.index_select(-1, atomic_numbers)
        return energies, head_pre

    def head_backward(self, g: torch.Tensor, head_pre: List[torch.Tensor]) -> torch.Tensor:
        """∂/∂h [(M,) n, F] of Σ_i g_i y_i for the head's outputs y and g [(M,) n, 1] (energy_scale included)."""
        for k in range(len(self.head_w) - 1, -1, -1):
            if self.head_activated[k]:
                g = torch.ops.aten.softplus_backward(g, head_pre[k], 1.0, 20.0)   # g ⊙ ssp', as autograd
            g = self._matmul(g, self.head_w[k])
        return g

    def head_seed(self, n_atoms: int, local: Optional[torch.Tensor]) -> torch.Tensor:
        """∂E/∂(head output) [(M,) n_atoms, 1]: energy_scale, times the local-atom mask [n_atoms] if given."""
        scale = self.energy_scale.reshape(1, 1) if self.n_members == 1 else self.energy_scale.reshape(-1, 1, 1)
        if local is not None:
            return scale * local[:, None]
        if self.n_members == 1:
            return scale.expand(n_atoms, 1)
        return scale.expand(self.n_members, n_atoms, 1)

    def forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                shift_vectors: torch.Tensor, n_local: int, compute_virial: bool,
                compute_atom_virial: bool = False) -> Dict[str, torch.Tensor]:
        idx_i, idx_j, vectors, n_two_way = edges_for_messages(positions, edge_index, shift_vectors,
                                                              positions.shape[0], self.use_pairs)
        return self.forward_edges(positions, atomic_numbers, idx_i, idx_j, vectors, n_two_way, n_local,
                                  compute_virial, compute_atom_virial)

    def repulsion_terms(self, d: torch.Tensor, atomic_numbers: torch.Tensor, idx_i: torch.Tensor,
                        idx_j: torch.Tensor, counted: torch.Tensor, n_two_way: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The pair repulsion, compiled (mlpot.model.nn.pair_repulsion's function in one operator
        call): (per-atom energies [(M,) N] eV, ∂(Σ counted · energies)/∂d [(M,) E]) of edges of
        lengths d [E] Å, the first n_two_way counting for both atoms; counted [N] is 1 for the
        atoms whose energy counts."""
        energies, grad_d = torch.ops.mlpot.pair_repulsion(d, atomic_numbers, idx_i, idx_j, self.element_index,
                                                          self.radius, self.strength, counted, n_two_way)
        if self.n_members == 1:
            return energies[0], grad_d[0]
        return energies, grad_d

    def forward_edges(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, idx_i: torch.Tensor,
                      idx_j: torch.Tensor, vectors: torch.Tensor, n_two_way: int, n_local: int,
                      compute_virial: bool, compute_atom_virial: bool = False,
                      keep: bool = False) -> Dict[str, torch.Tensor]:
        """forward on edges already chosen (edges_for_messages): idx_i, idx_j [E'], vectors
        r_j − r_i + S [E', 3] Å, the first n_two_way sending messages both ways; keep: also the
        final features h_T [(M,) N, F] as "features" (a dipole head's input) and ∂E/∂r_e [(M,) E', 3]
        as "edge_gradient" (what a `.pt2` gives for per-atom virials)."""
        n_atoms = positions.shape[0]
        d = torch.linalg.norm(vectors, dim=1)
        dc = d.to(self.embedding.dtype)
        n_t = self.n_interactions
        filters, slopes = self.filters(dc, -1)

        # forward, keeping what the derivatives need
        h = self.embed(atomic_numbers)
        xs: List[torch.Tensor] = []
        pre: List[torch.Tensor] = []              # W₁ y_t + b₁
        for t in range(n_t):
            # the edge indices are checked on the first layer
            h, x, a = self.layer_forward(t, h, dc, idx_i, idx_j, filters, n_t, t, n_atoms, n_two_way, t == 0)
            xs.append(x)
            pre.append(a)
        energies, head_pre = self.head(h, atomic_numbers)
        local = (torch.arange(n_atoms, device=positions.device) < n_local).to(energies.dtype)
        pair_energies, pair_grad = self.repulsion_terms(d, atomic_numbers, idx_i, idx_j, local, n_two_way)
        energies = energies + pair_energies.to(energies.dtype)
        # the gradient of the energy, back through the same layers. The energy of the local atoms,
        # forces on all (LAMMPS); with every atom local the mask is all ones (the same numbers), and
        # no branch on n_local keeps it a dynamic size when traced (mlpot.deploy.pt2_lammps)
        energy = (energies * local).sum(-1).reshape(-1)
        g = self.head_seed(n_atoms, local)
        g = self.head_backward(g, head_pre)
        grad_d = pair_grad.to(dc.dtype)
        for t in range(n_t - 1, -1, -1):
            g_d, g_x = self.layer_backward(t, g, xs[t], pre[t], dc, idx_i, idx_j, filters, slopes, n_t, t, n_atoms,
                                           n_two_way, t > 0)
            grad_d = grad_d + g_d
            if t > 0:
                g = g + g_x
        grad_vectors = gradient_along_edges(vectors, grad_d, d)          # ∂E/∂r_e [(M,) E, 3]
        forces, virial = forces_and_virial(vectors, grad_vectors, idx_i, idx_j, n_atoms, compute_virial)
        result: Dict[str, torch.Tensor] = {"energy": energy, "forces": forces, "energies": energies, "virial": virial}
        if compute_atom_virial and self.n_members == 1:
            result["atom_virial"] = atom_virial_of_edges(vectors, grad_vectors, idx_i, idx_j, n_atoms)
        if keep:
            result["features"] = h
            result["edge_gradient"] = grad_vectors
        return result


class ExportedSchNet(ExportedPerLayer):
    """ExportedPerLayer whose forward and per-layer steps are WrittenOutSchNet's at M = 1 on the
    CPU (other devices, and inputs that require grad, take the autograd forward); same signature
    and outputs as ExportedForward.forward."""

    def __init__(self, potential):
        super().__init__(potential)
        if not written_out_forces_apply(potential):
            raise ValueError("ExportedSchNet needs a SchNet with fused or tabulated kernels and an Atomwise energy head")
        self.head_activated: List[bool] = [isinstance(layer.activation, ShiftedSoftplus)
                                           for layer in potential.energy_head.net]
        # the filter networks' weights stacked over interactions, [T, ...]: the filters depend on
        # the distances only, so all of them are evaluated in one pass (torch.ops.mlpot.cfconv_filters).
        # Taken once here: an exported model's weights are fixed.
        # Tabulated kernels instead: the tables stacked [T, M, 6F], evaluated inside the message
        # and gradient loops (torch.ops.mlpot.cfconv_tabulated_messages / _gradient).
        # These attributes are also what WrittenOutSchNet stacks committees from (every format version).
        blocks = potential.representation.interactions
        nets = [block.filter_network for block in blocks]
        self.tabulated: bool = isinstance(blocks[0].convolution, TabulatedConvolution)
        self.table_spacing: float = float(blocks[0].convolution.spacing) if self.tabulated else 0.0
        empty = torch.zeros(0, dtype=nets[0][0].weight.dtype)
        with torch.no_grad():
            for name, layer, attr in (("filter_w1", 0, "weight"), ("filter_b1", 0, "bias"),
                                      ("filter_w2", 1, "weight"), ("filter_b2", 1, "bias")):
                stacked = torch.stack([getattr(net[layer], attr) for net in nets]).clone()
                self.register_buffer(name, empty if self.tabulated else stacked)
            self.register_buffer("tables", torch.stack([block.convolution.table for block in blocks]).clone()
                                 if self.tabulated else empty)
        self.engine = WrittenOutSchNet([self])

    def forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                shift_vectors: torch.Tensor, cell: torch.Tensor, n_local: int,
                compute_virial: bool = True, compute_atom_virial: bool = False) -> Dict[str, torch.Tensor]:
        if positions.device.type != "cpu" or positions.requires_grad:
            return self.autograd_forward(positions, atomic_numbers, edge_index, shift_vectors, cell, n_local,
                                         compute_virial, compute_atom_virial)
        # no graph is recorded: the parameters are frozen on export and the positions need no grad
        return self.written_out_forward(positions, atomic_numbers, edge_index, shift_vectors, n_local,
                                        compute_virial, compute_atom_virial)

    def written_out_forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor,
                            edge_index: torch.Tensor, shift_vectors: torch.Tensor, n_local: int,
                            compute_virial: bool, compute_atom_virial: bool = False) -> Dict[str, torch.Tensor]:
        return self.engine(positions, atomic_numbers, edge_index, shift_vectors, n_local, compute_virial,
                           compute_atom_virial)

    # Layer by layer, for the LAMMPS exchange path (what ExportedPerLayer's interaction/readout
    # give by autograd, without a graph): the engine's steps at M = 1.
    @torch.jit.export
    def interaction_forward(self, t: int, h: torch.Tensor, edge_vectors: torch.Tensor, edge_index: torch.Tensor,
                            n_targets: int, n_two_way: int = 0) -> List[torch.Tensor]:
        """[h_{t+1} [n_targets, F], then what interaction_backward needs: x, a, filter, slope];
        the arguments as interaction's."""
        if t < 0 or t >= self.engine.n_interactions:
            raise ValueError("ExportedSchNet.interaction_forward: interaction index out of range")
        dc = torch.linalg.norm(edge_vectors, dim=1).to(h.dtype)
        filters, slopes = self.engine.filters(dc, t)
        h_next, x, a = self.engine.layer_forward(t, h, dc, edge_index[0], edge_index[1], filters, 1, 0,
                                                 n_targets, n_two_way, True)
        return [h_next, x, a, filters, slopes]

    @torch.jit.export
    def interaction_backward(self, t: int, g_next: torch.Tensor, saved: List[torch.Tensor],
                             edge_vectors: torch.Tensor, edge_index: torch.Tensor, n_targets: int,
                             n_two_way: int, n_atoms: int, want_h: bool = True) -> List[torch.Tensor]:
        """[∂/∂h_t [n_atoms, F] (empty unless want_h), ∂/∂edge_vectors [E, 3]] of Σ h_{t+1} · g_next
        (g_next [n_targets, F]); saved = interaction_forward(...)[1:] of the same call."""
        d = torch.linalg.norm(edge_vectors, dim=1)
        dc = d.to(g_next.dtype)
        g_d, g_h = self.engine.layer_backward(t, g_next, saved[0], saved[1], dc, edge_index[0], edge_index[1],
                                              saved[2], saved[3], 1, 0, n_targets, n_two_way, want_h)
        if want_h:   # the residual's g ⊕ 0, without a branch on the sizes (traced: mlpot.deploy.pt2_exchange)
            g_h = g_h + torch.nn.functional.pad(g_next, [0, 0, 0, n_atoms - n_targets])
        return [g_h, gradient_along_edges(edge_vectors, g_d, d)]

    @torch.jit.export
    def readout_gradient(self, h: torch.Tensor, atomic_numbers: torch.Tensor) -> List[torch.Tensor]:
        """[per-atom energies [n] eV, ∂(Σ energies)/∂h [n, F]] of features h [n, F]."""
        energies, head_pre = self.engine.head(h, atomic_numbers)
        return [energies, self.engine.head_backward(self.engine.head_seed(h.shape[0], None), head_pre)]
