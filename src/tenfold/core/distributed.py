"""Data-parallel training helpers (torchrun + DistributedDataParallel), shared by every system.

First written for `maskfocal` (its train loop is the reference user); moved to core so that any system's
data-parallel training runs under `torchrun` the same way.

Under `torchrun --nproc_per_node N` (env RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT) `setup`
initialises a process group: gloo on CPU, nccl on CUDA (one GPU per local rank). Without those variables every
function degrades to the single-process case, so the same train loop serves both.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from tenfold.core.runtime import select_device


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> DistContext:
    """Join the torchrun process group when launched by torchrun; else a single-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(0, 1, select_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = select_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistContext(rank, world, dev)


def teardown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def wrap(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """DistributedDataParallel over the process group when distributed, else the model itself."""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


# Design choice: loss normalisers (#heads, #positives, sum M Y) are per rank, as in torchvision's detection
# references; DDP averages the gradients, so N ranks equal one process only up to that normalisation.
def shard_indices(order: list[int], batch_size: int, ctx: DistContext) -> list[list[int]]:
    """Split an epoch's sample order into global batches of `batch_size`, then give rank r every r-th sample
    of each batch (DistributedSampler-style), so N ranks see the same global batches as one process.
    The last incomplete batch is dropped so every rank takes the same number of steps.
    """
    if batch_size % ctx.world_size:
        raise ValueError(f"train.batch_size={batch_size} must be divisible by the world size {ctx.world_size}")
    n = len(order) // batch_size
    return [order[i * batch_size:(i + 1) * batch_size][ctx.rank::ctx.world_size] for i in range(n)]


def all_reduce_mean(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Mean over ranks (for logging the global loss); identity in one process."""
    if not ctx.distributed:
        return value
    v = value.detach().clone()
    dist.all_reduce(v, op=dist.ReduceOp.SUM)
    return v / ctx.world_size


def state_hash(module: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer (sorted by name): equal iff the weights are bitwise equal."""
    h = hashlib.sha256()
    for name, t in sorted(unwrap(module).state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
