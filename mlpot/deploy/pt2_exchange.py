"""The layer-by-layer models of a `.pt2` package, for LAMMPS' exchange path (`pair_style mlpot`,
mlpot/lammps/csrc/mlpot_model.cpp, evaluate_per_layer): the plugin runs the interactions one at
a time and exchanges the ghost atoms' features between them, as it does with a TorchScript
file's per-layer methods (mlpot.kernels.written_out.ExportedSchNet: embed, interaction_forward,
interaction_backward, readout_gradient, pair_terms). A traced graph fixes t, so each interaction
is two models, and the steps between which no exchange happens share one (every AOTInductor
model costs ~7 s of C++ compiling at export):

    layer_0_forward(atomic_numbers [R] int64, edge_vectors [E, 3] Å, edge_index [2, E] int64,
                    targets [n_local] uint8, two_way [n_two_way] uint8)
      -> (h_1 [n_local, F], x, a, filters, slopes, repulsion energies [n_local] eV,
          ∂(their sum)/∂edge_vectors [E, 3])                         (embedding and pair terms)
    layer_{t}_forward(h_t [R, F], edge_vectors, edge_index, targets, two_way), t > 0
      -> (h_{t+1} [n_local, F], x, a, filters, slopes)
    layer_{T-1}_backward(h_T [n_local, F], atomic_numbers [n_local], x, a, filters, slopes,
                         edge_vectors, edge_index, targets, two_way)
      -> (energies [n_local] eV, ∂E/∂h_{T-1} [R, F], ∂E/∂edge_vectors [E, 3])    (the readout first)
    layer_{t}_backward(g [n_local, F], x, a, filters, slopes, edge_vectors, edge_index, targets,
                       two_way), t < T − 1
      -> (∂/∂h_t [R, F], ∂/∂edge_vectors [E, 3]) of Σ h_{t+1} · g

∂/∂h_0 is empty (nothing is upstream of the embedding). Rows: the R atoms whose features an edge
reads, the n_local targets first; edge (i, j) carries the message of row j to target i, r = x_j − x_i,
and the first n_two_way edges, between two targets, carry it both ways. n_local and n_two_way are
the lengths of marker tensors: torch.export keeps a tensor's size dynamic, not an int's value.
"""
from __future__ import annotations

import torch
from torch import nn

from mlpot.kernels.written_out import ExportedSchNet
from mlpot.model.nn.edge_gradients import forces_and_virial, gradient_along_edges


def layer_model_names(n_interactions: int) -> list[str]:
    """The package's models of the exchange path: the forward steps, then the backward steps."""
    return ([f"layer_{t}_forward" for t in range(n_interactions)] +
            [f"layer_{t}_backward" for t in range(n_interactions - 1, -1, -1)])


def _sizes(rows: int, edge_index: torch.Tensor, targets: torch.Tensor, two_way: torch.Tensor) -> tuple:
    """(n_local, n_two_way), with what the traced graph may assume of them."""
    n_local, n_two_way = targets.shape[0], two_way.shape[0]
    torch._check(n_local <= rows)
    torch._check(n_two_way <= edge_index.shape[1])
    return n_local, n_two_way


def pair_terms(exported: ExportedSchNet, edge_vectors: torch.Tensor, edge_index: torch.Tensor,
               atomic_numbers: torch.Tensor, n_local: int, n_two_way: int) -> tuple:
    """(repulsion energies [n_local] eV, ∂(their sum)/∂edge_vectors [E, 3]): ExportedSchNet.pair_terms
    through the written-out engine's operator (one call, no branch on n_two_way)."""
    d = torch.linalg.norm(edge_vectors, dim=1)
    counted = (torch.arange(atomic_numbers.shape[0]) < n_local).to(d.dtype)
    energies, g_d = exported.engine.repulsion_terms(d, atomic_numbers, edge_index[0], edge_index[1], counted,
                                                    n_two_way)
    return energies.narrow(0, 0, n_local), gradient_along_edges(edge_vectors, g_d, d)


class LayerForward(nn.Module):
    """layer_{t}_forward of the module docstring."""

    def __init__(self, exported: ExportedSchNet, t: int):
        super().__init__()
        self.exported, self.t = exported, t

    def forward(self, h: torch.Tensor, edge_vectors: torch.Tensor, edge_index: torch.Tensor, targets: torch.Tensor,
                two_way: torch.Tensor):
        n_local, n_two_way = _sizes(h.shape[0], edge_index, targets, two_way)
        first = self.t == 0
        features = self.exported.engine.embed(h) if first else h      # t = 0: h is the atomic numbers
        out = self.exported.interaction_forward(self.t, features, edge_vectors, edge_index, n_local, n_two_way)
        out = [o.clone() if o.numel() == 0 else o for o in out]       # a constant is no output (tables)
        if first:
            out += pair_terms(self.exported, edge_vectors, edge_index, h, n_local, n_two_way)
        return tuple(out)


class LayerBackward(nn.Module):
    """layer_{t}_backward of the module docstring."""

    def __init__(self, exported: ExportedSchNet, t: int):
        super().__init__()
        self.exported, self.t = exported, t
        self.last = t == exported.engine.n_interactions - 1

    def forward(self, *args: torch.Tensor):
        if self.last:      # the readout's energies and seed first
            h, atomic_numbers, *args = args
            energies, g_next = self.exported.readout_gradient(h, atomic_numbers)
        else:
            g_next, *args = args
        x, a, filters, slopes, edge_vectors, edge_index, targets, two_way = args
        n_local, n_two_way = _sizes(x.shape[0], edge_index, targets, two_way)
        g_h, g_vectors = self.exported.interaction_backward(self.t, g_next, [x, a, filters, slopes], edge_vectors,
                                                            edge_index, n_local, n_two_way, x.shape[0], self.t > 0)
        return (energies, g_h, g_vectors) if self.last else (g_h, g_vectors)


def exchange_inputs(positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor,
                    n_local: int, n_two_way: int) -> tuple:
    """(atomic_numbers [R], edge_vectors [E, 3], edge_index, targets [n_local] uint8, two_way
    [n_two_way] uint8) of rows at `positions` [R, 3] Å: what layer_0_forward takes."""
    vectors = positions[edge_index[1]] - positions[edge_index[0]]
    return (atomic_numbers, vectors, edge_index, torch.zeros(n_local, dtype=torch.uint8),
            torch.zeros(n_two_way, dtype=torch.uint8))


def trace_example(positions: torch.Tensor, atomic_numbers: torch.Tensor) -> tuple:
    """exchange_inputs of 9 rows, 4 targets, 3 edges both ways among them and 8 from other rows:
    sizes of at least 2 and all different (torch.export specialises sizes 0 and 1, and takes equal
    sizes for the same)."""
    two_way = [(0, 1), (0, 2), (1, 2)]
    one_way = [(i, j) for i in (0, 1) for j in (4, 5, 6, 7)]
    edges = torch.tensor(two_way + one_way, dtype=torch.long).T.contiguous()
    return exchange_inputs(positions[:9], atomic_numbers[:9], edges, 4, 3)


def run_exchange(step, inputs: tuple, n_interactions: int) -> dict:
    """The exchange path as the plugin runs it, on one rank with no other rank to exchange with:
    step(name, args) runs a model of the package (or its eager module). Between layers the targets'
    rows take their new features and the other rows fixed numbers (LAMMPS would send their owners'
    features); the gradient goes on through the targets' rows. Returns energy [1] eV, forces
    [R, 3] eV/Å, energies [n_local] eV and virial [3, 3] eV from ∂E/∂edge_vectors."""
    numbers, vectors, edge_index, targets, two_way = inputs
    n_local = targets.shape[0]
    edges = (vectors, edge_index, targets, two_way)
    saved, h = [], numbers
    for t in range(n_interactions):
        out = step(f"layer_{t}_forward", (h, *edges))
        saved.append(out[1:5])
        if t == 0:
            pair_energies, grad_vectors = out[5], out[6]
            width = out[0].shape[1]
            ghosts = torch.sin(torch.arange((numbers.shape[0] - n_local) * width)).reshape(-1, width).to(out[0].dtype)
        h = torch.cat([out[0], ghosts])
    g = None
    for t in range(n_interactions - 1, -1, -1):
        if t == n_interactions - 1:
            energies, g_h, g_vectors = step(f"layer_{t}_backward", (h[:n_local], numbers[:n_local], *saved[t], *edges))
        else:
            g_h, g_vectors = step(f"layer_{t}_backward", (g, *saved[t], *edges))
        grad_vectors = grad_vectors + g_vectors
        g = g_h[:n_local]
    energies = energies + pair_energies
    forces, virial = forces_and_virial(vectors, grad_vectors, edge_index[0], edge_index[1], numbers.shape[0], True)
    return {"energy": energies.sum().reshape(1), "forces": forces, "energies": energies, "virial": virial}


def eager_layer_models(exported: ExportedSchNet) -> dict:
    """{name: module} of every layer model (layer_model_names)."""
    models = {}
    for t in range(exported.engine.n_interactions):
        models[f"layer_{t}_forward"] = LayerForward(exported, t).eval()
        models[f"layer_{t}_backward"] = LayerBackward(exported, t).eval()
    return models


def export_layers(exported: ExportedSchNet, example: tuple) -> dict:
    """{name: torch.export.ExportedProgram} of every layer model with dynamic sizes, traced on
    `example` (trace_example: the sizes it needs)."""
    rows = torch.export.Dim("n_rows", min=0, max=10_000_000)
    edges = torch.export.Dim("n_edges", min=0, max=1_000_000_000)
    local = torch.export.Dim("n_local", min=0, max=10_000_000)
    two_way = torch.export.Dim("n_two_way", min=0, max=1_000_000_000)
    edge_dims = ({0: edges}, {1: edges}, {0: local}, {0: two_way})
    programs = {}

    def step(name, args):
        module = models[name]
        if name.endswith("forward"):
            dims = ({0: rows}, *edge_dims)
        else:   # (h [n_local, F], atomic_numbers [n_local]) or g [n_local, F]; x, a, filters, slopes; edges
            saved = args[-8:-4]
            head = ({0: local}, {0: local}) if module.last else ({0: local},)
            filters = tuple({1: edges} if s.dim() == 3 else None for s in saved[2:])
            dims = (*head, {0: rows}, {0: local}, *filters, *edge_dims)
        shapes = dims if name.endswith("forward") else (dims,)     # LayerBackward.forward(*args)
        programs[name] = torch.export.export(module, args, dynamic_shapes=shapes, strict=False)
        return module(*args)

    models = eager_layer_models(exported)
    run_exchange(step, example, exported.engine.n_interactions)
    return programs


def exchange_cases(positions: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor) -> list[tuple]:
    """exchange_inputs the export checks the layer models on, from a cluster and its full edge
    list: 4 targets of its 9 rows (edges between targets once, both ways, then those from other
    rows), all 9 targets, one target and the row of its neighbour, one target without edges, and
    no rows at all (a rank whose atoms are all ghosts)."""
    i, j = edge_index

    def inputs(n_local: int, rows: int) -> tuple:
        both = edge_index[:, (i < j) & (j < n_local)]
        one = edge_index[:, (i < n_local) & (j >= n_local) & (j < rows)]
        return exchange_inputs(positions[:rows], atomic_numbers[:rows], torch.cat([both, one], 1), n_local,
                               both.shape[1])

    pair = edge_index[:, :1]
    two = exchange_inputs(positions[pair[:, 0]], atomic_numbers[pair[:, 0]], torch.tensor([[0], [1]]), 1, 0)
    return [inputs(4, 9), inputs(9, 9), two, inputs(1, 1), inputs(0, 0)]


def layer_deviation(path, exported: ExportedSchNet, cluster: tuple) -> tuple[str, float]:
    """(output, largest deviation relative to its scale) of the package's layer models at `path`
    from their eager modules over exchange_cases of the export's cluster (positions, atomic_numbers,
    edge_index, ...)."""
    from torch._inductor.package import load_package

    from mlpot.deploy.pt2 import largest_deviation

    n_layers = exported.engine.n_interactions
    runners = {name: load_package(str(path), name) for name in layer_model_names(n_layers)}
    models = eager_layer_models(exported)
    return max((largest_deviation(run_exchange(lambda name, args: runners[name](*args), case, n_layers),
                                  run_exchange(lambda name, args: models[name](*args), case, n_layers))
                for case in exchange_cases(*cluster[:3])), key=lambda found: found[1])
