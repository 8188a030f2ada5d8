"""Multi-process runs from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK).

``torchrun --nproc-per-node 2 -m dse_core.cli train ...`` starts one process per GPU
(nccl) or per CPU worker (gloo). Without torchrun everything here is a no-op.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
import torch
import torch.distributed as dist


@attrs.frozen
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the torchrun process group if there is one; on CUDA each rank takes its local GPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world_size, local_rank), device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def gather(obj: Any, d: Dist) -> list[Any]:
    """Every rank's ``obj`` on every rank (a list of one outside torchrun)."""
    if not d.enabled:
        return [obj]
    out: list[Any] = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def broadcast_flags(flags: tuple[bool, ...], d: Dist) -> tuple[bool, ...]:
    """Each flag True on every rank when any rank says True (a NaN or a Ctrl-C seen by one rank stops all)."""
    if not d.enabled:
        return tuple(flags)
    return tuple(any(column) for column in zip(*gather(tuple(flags), d)))


def average_gradients(module: torch.nn.Module) -> None:
    """Average the gradients of ``module`` over the ranks (what DDP does after one backward pass)."""
    world_size = dist.get_world_size()
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world_size
