"""SchNet's energy, forces and virial with the chain rule written out, for exported models.

An exported SchNet with fused or tabulated kernels and an atom-wise energy head (the usual model) runs
`ExportedSchNet.forward`: the layers' forward keeps what their derivatives need (every
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
(∂E/∂d starts from the repulsion's φ' (mlpot.nn.pair_repulsion)):
  g_h ← ∂E/∂h_T through the head; for t = T−1 .. 0: g_y = W₁ᵀ(ssp'(W₁ y_t + b₁) ⊙ W₂ᵀ g_h),
  (∂E/∂d, g_x) = cfconv_gradient(g_y), g_h ← g_h + W_inᵀ g_x;
  ∂E/∂r_e = (∂E/∂d_e) r_e / d_e per edge e = (i, j) with r_e = r_j − r_i + S_e, so
  F_i += ∂E/∂r_e and F_j −= ∂E/∂r_e; virial = −½ (M + Mᵀ), M = Σ_e r_e ⊗ ∂E/∂r_e; asked for,
  the per-atom virial −½ r_e ⊗ ∂E/∂r_e to atoms i and j of every edge (atom_virial_of_edges).
"""
from typing import Dict, List, Tuple

import torch
from torch import nn

from mlpot.nn import Dense, ShiftedSoftplus
from mlpot.nn.activations import shifted_softplus
from mlpot.nn.edge_gradients import atom_virial_of_edges, forces_and_virial, gradient_along_edges
from mlpot.model.exported import ExportedPerLayer
from mlpot.representations.convolution import TabulatedConvolution


def written_out_forces_apply(potential) -> bool:
    """True for a SchNet potential this module can differentiate: fused or tabulated convolution
    kernels (all interactions alike), the standard interaction block, an Atomwise energy head of Dense layers with shifted-softplus
    or no activation, no dipole head."""
    from mlpot.model.heads import Atomwise
    from mlpot.representations.convolution import FusedConvolution
    from mlpot.representations.schnet import SchNet

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


class ExportedSchNet(ExportedPerLayer):
    """ExportedPerLayer whose forward writes out the chain rule (module docstring) on the CPU;
    same signature and outputs as ExportedForward.forward."""

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

    def forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                shift_vectors: torch.Tensor, cell: torch.Tensor, n_local: int,
                compute_virial: bool = True, compute_atom_virial: bool = False) -> Dict[str, torch.Tensor]:
        if positions.device.type != "cpu" or positions.requires_grad:
            return self.autograd_forward(positions, atomic_numbers, edge_index, shift_vectors, cell, n_local,
                                         compute_virial, compute_atom_virial)
        # no graph is recorded: the parameters are frozen on export and the positions need no grad
        return self.written_out_forward(positions, atomic_numbers, edge_index, shift_vectors, n_local,
                                        compute_virial, compute_atom_virial)

    def _filters(self, dc: torch.Tensor, first: int, count: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Filters and slopes [count, P, F] of interactions first .. first+count-1 at distances dc
        [P] (one cfconv_filters pass); empty with tables (evaluated inside the message loops)."""
        if self.tabulated:
            return self.filter_w1, self.filter_w1
        end = first + count
        return torch.ops.mlpot.cfconv_filters(dc, self.filter_w1[first:end], self.filter_b1[first:end],
                                              self.filter_w2[first:end], self.filter_b2[first:end],
                                              self.potential.representation.radial_basis.centers,
                                              self.potential.representation.radial_basis.coeff,
                                              self.potential.representation.cutoff)

    def _layer_forward(self, t: int, weights: List[torch.Tensor], h: torch.Tensor, dc: torch.Tensor,
                       idx_i: torch.Tensor, idx_j: torch.Tensor, filter_t: torch.Tensor, n_out: int,
                       n_two_way: int, check_edges: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Interaction t: (h_{t+1} [n_out, F], x = W_in h_t [N, F'], a = W₁ y_t + b₁ [n_out, F]);
        weights [W_in, W₁, b₁, W₂, b₂]."""
        cutoff = self.potential.representation.cutoff
        x = nn.functional.linear(h, weights[0])
        if self.tabulated:
            y = torch.ops.mlpot.cfconv_tabulated_messages(dc, x, idx_i, idx_j, self.tables[t], self.table_spacing,
                                                          cutoff, n_two_way, n_out, check_edges)
        else:
            y = torch.ops.mlpot.cfconv_messages(dc, x, idx_i, idx_j, filter_t, cutoff, n_two_way, n_out, check_edges)
        a = nn.functional.linear(y, weights[1], weights[2])
        h_next = h[:n_out] + nn.functional.linear(shifted_softplus(a), weights[3], weights[4])
        return h_next, x, a

    def _layer_backward(self, t: int, weights: List[torch.Tensor], g: torch.Tensor, x: torch.Tensor,
                        a: torch.Tensor, dc: torch.Tensor, idx_i: torch.Tensor, idx_j: torch.Tensor,
                        filter_t: torch.Tensor, slope_t: torch.Tensor, n_out: int, n_two_way: int,
                        want_x: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """(∂/∂d [P], ∂/∂h_t through the convolution [N, F] or [0]) of Σ h_{t+1} · g, g [n_out, F]
        (the residual's g ⊕ 0 comes on top)."""
        cutoff = self.potential.representation.cutoff
        g_y = torch.ops.aten.softplus_backward(g.mm(weights[3]), a, 1.0, 20.0).mm(weights[1])
        if self.tabulated:
            g_d, g_x = torch.ops.mlpot.cfconv_tabulated_gradient(dc, x, idx_i, idx_j, self.tables[t], g_y,
                                                                 self.table_spacing, cutoff, n_two_way, n_out, want_x)
        else:
            g_d, g_x = torch.ops.mlpot.cfconv_gradient(dc, x, idx_i, idx_j, filter_t, slope_t, g_y, cutoff,
                                                       n_two_way, n_out, want_x)
        return g_d, (g_x.mm(weights[0]) if want_x else g_x)

    def _layer_weights(self, t: int) -> List[torch.Tensor]:
        """[W_in, W₁, b₁, W₂, b₂] of interaction t."""
        for k, block in enumerate(self.potential.representation.interactions):
            if k == t:
                return [block.in2f.weight, block.f2out[0].weight, block.f2out[0].bias, block.f2out[1].weight,
                        block.f2out[1].bias]
        raise ValueError("ExportedSchNet: interaction index out of range")

    def _head(self, h: torch.Tensor, atomic_numbers: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """(per-atom energies [n] eV, the head layers' pre-activations) of features h [n, F]."""
        head_pre: List[torch.Tensor] = []
        z = h
        k = 0
        for layer in self.potential.energy_head.net:
            z = nn.functional.linear(z, layer.weight, layer.bias)
            head_pre.append(z)
            if self.head_activated[k]:
                z = shifted_softplus(z)
            k += 1
        return self.potential.energies_of_outputs(z[:, 0], atomic_numbers), head_pre

    def _head_backward(self, g: torch.Tensor, head_pre: List[torch.Tensor]) -> torch.Tensor:
        """∂/∂h [n, F] of Σ_i g_i y_i for the head's outputs y and g [n, 1] (energy_scale included)."""
        head_weights: List[torch.Tensor] = []
        for layer in self.potential.energy_head.net:
            head_weights.append(layer.weight)
        for k in range(len(head_weights) - 1, -1, -1):
            if self.head_activated[k]:
                g = torch.ops.aten.softplus_backward(g, head_pre[k], 1.0, 20.0)   # g ⊙ ssp', as autograd
            g = g.mm(head_weights[k])
        return g

    # Layer by layer with the chain rule written out, for the LAMMPS exchange path (what
    # ExportedPerLayer's interaction/readout give by autograd, without a graph):
    @torch.jit.export
    def interaction_forward(self, t: int, h: torch.Tensor, edge_vectors: torch.Tensor, edge_index: torch.Tensor,
                            n_targets: int, n_two_way: int = 0) -> List[torch.Tensor]:
        """[h_{t+1} [n_targets, F], then what interaction_backward needs: x, a, filter, slope];
        the arguments as interaction's."""
        if t < 0 or t >= len(self.potential.representation.interactions):
            raise ValueError("ExportedSchNet.interaction_forward: interaction index out of range")
        dc = torch.linalg.norm(edge_vectors, dim=1).to(h.dtype)
        filters, slopes = self._filters(dc, t, 1)
        filter_t = filters if self.tabulated else filters[0]
        slope_t = slopes if self.tabulated else slopes[0]
        h_next, x, a = self._layer_forward(t, self._layer_weights(t), h, dc, edge_index[0], edge_index[1],
                                           filter_t, n_targets, n_two_way, True)
        return [h_next, x, a, filter_t, slope_t]

    @torch.jit.export
    def interaction_backward(self, t: int, g_next: torch.Tensor, saved: List[torch.Tensor],
                             edge_vectors: torch.Tensor, edge_index: torch.Tensor, n_targets: int,
                             n_two_way: int, n_atoms: int, want_h: bool = True) -> List[torch.Tensor]:
        """[∂/∂h_t [n_atoms, F] (empty unless want_h), ∂/∂edge_vectors [E, 3]] of Σ h_{t+1} · g_next
        (g_next [n_targets, F]); saved = interaction_forward(...)[1:] of the same call."""
        d = torch.linalg.norm(edge_vectors, dim=1)
        dc = d.to(g_next.dtype)
        g_d, g_h = self._layer_backward(t, self._layer_weights(t), g_next, saved[0], saved[1], dc, edge_index[0],
                                        edge_index[1], saved[2], saved[3], n_targets, n_two_way, want_h)
        if want_h:
            g_h = torch.cat([g_h[:n_targets] + g_next, g_h[n_targets:]]) if n_targets < n_atoms else g_h + g_next
        return [g_h, gradient_along_edges(edge_vectors, g_d, d)]

    @torch.jit.export
    def readout_gradient(self, h: torch.Tensor, atomic_numbers: torch.Tensor) -> List[torch.Tensor]:
        """[per-atom energies [n] eV, ∂(Σ energies)/∂h [n, F]] of features h [n, F]."""
        energies, head_pre = self._head(h, atomic_numbers)
        g = self.potential.energy_scale.expand(h.shape[0], 1)
        return [energies, self._head_backward(g, head_pre)]

    def written_out_forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor,
                            edge_index: torch.Tensor, shift_vectors: torch.Tensor, n_local: int,
                            compute_virial: bool, compute_atom_virial: bool = False) -> Dict[str, torch.Tensor]:
        rep = self.potential.representation
        n_atoms = positions.shape[0]
        idx_i, idx_j, vectors, n_two_way = edges_for_messages(positions, edge_index, shift_vectors, n_atoms,
                                                              rep.use_pairs)
        d = torch.linalg.norm(vectors, dim=1)

        # forward, keeping what the derivatives need
        h = rep.embed(atomic_numbers)
        dc = d.to(h.dtype)
        n_layers = len(rep.interactions)
        filters, slopes = self._filters(dc, 0, n_layers)
        xs: List[torch.Tensor] = []
        pre: List[torch.Tensor] = []              # W₁ y_t + b₁
        weights: List[List[torch.Tensor]] = []
        for t in range(n_layers):
            w = self._layer_weights(t)
            # the edge indices are checked on the first layer
            h, x, a = self._layer_forward(t, w, h, dc, idx_i, idx_j, filters if self.tabulated else filters[t],
                                          n_atoms, n_two_way, t == 0)
            xs.append(x)
            pre.append(a)
            weights.append(w)
        energies, head_pre = self._head(h, atomic_numbers)
        counted = (torch.arange(n_atoms, device=positions.device) < n_local).to(energies.dtype)
        # the pair repulsion, compiled (mlpot.nn.pair_repulsion's function in one operator call)
        rep = self.potential.repulsion
        pair_energies, pair_grad = torch.ops.mlpot.pair_repulsion(d, atomic_numbers, idx_i, idx_j, rep.element_index,
                                                                  rep.radius.reshape(1, -1), rep.strength.reshape(1),
                                                                  counted, n_two_way)
        energies = energies + pair_energies[0].to(energies.dtype)
        # the gradient of the energy, back through the same layers
        if n_local >= n_atoms:
            energy = energies.sum().reshape(1)
            g = self.potential.energy_scale.expand(n_atoms, 1)
        else:  # LAMMPS: the energy of the local atoms, forces on all
            energy = (energies * counted).sum().reshape(1)
            g = (self.potential.energy_scale * counted)[:, None]
        g = self._head_backward(g, head_pre)
        grad_d = pair_grad[0].to(dc.dtype)
        for t in range(n_layers - 1, -1, -1):
            g_d, g_x = self._layer_backward(t, weights[t], g, xs[t], pre[t], dc, idx_i, idx_j,
                                            filters if self.tabulated else filters[t],
                                            slopes if self.tabulated else slopes[t], n_atoms, n_two_way, t > 0)
            grad_d = grad_d + g_d
            if t > 0:
                g = g + g_x
        grad_vectors = gradient_along_edges(vectors, grad_d, d)          # ∂E/∂r_e [E, 3]
        forces, virial = forces_and_virial(vectors, grad_vectors, idx_i, idx_j, n_atoms, compute_virial)
        result: Dict[str, torch.Tensor] = {"energy": energy, "forces": forces, "energies": energies, "virial": virial}
        if compute_atom_virial:
            result["atom_virial"] = atom_virial_of_edges(vectors, grad_vectors, idx_i, idx_j, n_atoms)
        return result
