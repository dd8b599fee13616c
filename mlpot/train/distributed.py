"""Data parallelism with torch.distributed, started by torchrun (or a single process).

Every rank holds the same model and takes a contiguous shard of every global batch. The
loss of a shard is normalised by the global batch's counts (mlpot.train.losses), so the
gradients summed over ranks (`sync_gradients`, one all-reduce of a flat buffer) equal the
single-process gradient of the same global batch; then every rank takes the same
optimizer step. Gradients are reduced by hand after backward, which works with the
double backward that force training needs (create_graph=True).

Backend: nccl when training on CUDA, gloo on CPU. Only rank 0 writes files.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:local_rank when CUDA is available, else cpu."""
    if preference == "auto":
        preference = "cuda" if torch.cuda.is_available() else "cpu"
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"training.device={preference} but CUDA is not available; use cpu or auto")
        return torch.device(preference if ":" in preference else f"cuda:{local_rank}")
    return torch.device("cpu")


def setup(device_preference: str = "auto") -> DistContext:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), else one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if world_size > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # Before the group exists: torch._dynamo (imported anyway by the first optimizer) imports
        # torch.distributed.nn.functional, whose functions bind group.WORLD as default arguments.
        # Bound to a live group, they keep it alive after destroy_process_group, so its gloo
        # worker threads run into interpreter finalization, and one that drops a finished
        # all_reduce's tensor there takes the GIL and aborts the process ("terminate called
        # without an active exception"; rank 1 exits right after its last all_reduce).
        importlib.import_module("torch._dynamo")
        torch.distributed.init_process_group(backend=backend)
    return DistContext(rank, world_size, local_rank, device)


def teardown(ctx: DistContext) -> None:
    if ctx.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def shard(indices: np.ndarray, ctx: DistContext) -> np.ndarray:
    """This rank's contiguous part of a global batch (parts differ in size by at most one)."""
    return np.array_split(np.asarray(indices), ctx.world_size)[ctx.rank]


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum of `values` over ranks (in place; returned for convenience)."""
    if ctx.distributed:
        torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.SUM)
    return values


def sync_gradients(parameters, ctx: DistContext) -> None:
    """Sum .grad over ranks (missing grads count as zeros), one all-reduce."""
    if not ctx.distributed:
        return
    params = [p for p in parameters if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def broadcast_module(module: torch.nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not ctx.distributed:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            torch.distributed.broadcast(t.data, src=0)


def broadcast_object(obj, ctx: DistContext):
    """rank 0's Python object on every rank (in memory only; nothing is read from disk)."""
    if not ctx.distributed:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]
