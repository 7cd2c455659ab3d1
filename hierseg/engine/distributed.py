"""Processes and devices: process-group set-up for ``torchrun``, rank and world size, collectives that are no-ops
in a single process, the device a command runs on, DDP unwrapping, bf16 autocast and evaluation mode.

A run is distributed when ``torchrun`` (or anything that sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) started it with ``WORLD_SIZE > 1``: gloo on the CPU, nccl on CUDA. Every helper
here checks :func:`is_distributed` first, so nothing touches ``torch.distributed`` when no group was initialised.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from hierseg.core.errors import HiersegError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False  # this process group was created by :func:`setup` (and is destroyed by cleanup)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_and_world_size() -> tuple[int, int]:
    """This process's rank and the number of processes (``(0, 1)`` without a process group)."""
    if is_distributed():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def main_process_by_env() -> bool:
    """Whether this process is rank 0 by ``torchrun``'s environment (true outside torchrun): the one that writes a
    run folder and reports, known before any process group exists."""
    return os.environ.get("RANK", "0") == "0"


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise HiersegError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from None


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    """``auto`` is CUDA when there is one; under ``torchrun`` each process takes GPU ``LOCAL_RANK``."""
    cuda = torch.cuda.is_available()
    if choice == "cuda" and not cuda:
        raise HiersegError("run.device: cuda was asked for but torch sees no CUDA device (use cpu or auto)")
    if choice == "cpu" or not cuda:
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def parse_device(text: str | torch.device | None) -> torch.device:
    """The device a ``--device`` names (default: CUDA when there is one); one that does not exist here, or that
    torch does not know (``tpu``), is a one-line error instead of torch's traceback at the first tensor moved."""
    if text is None:
        return default_device()
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise HiersegError(f"--device {text}: not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise HiersegError(f"--device {text}: torch sees no CUDA device here; use --device cpu")
        if device.index is not None and device.index >= count:
            raise HiersegError(f"--device {text}: torch sees {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    elif device.type != "cpu":
        raise HiersegError(f"--device {text}: hierseg runs on cpu or cuda, not {device.type}")
    return device


def setup(device_choice: str = "auto") -> DistInfo:
    """Join the process group ``torchrun`` describes (if any) and pick this process's device."""
    world_size = env_world_size()
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_choice, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns_group = world_size > 1 and not is_distributed()
    if owns_group:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                device_id=device if device.type == "cuda" else None)
    if is_distributed():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    else:
        rank, world_size, local_rank = 0, 1, 0
    return DistInfo(rank, world_size, local_rank, device, owns_group)


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in a single process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP (or DataParallel) wrapper or a ``torch.compile`` result; the model itself otherwise."""
    if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        model = model.module
    return getattr(model, "_orig_mod", model)


def autocast(device: torch.device, enabled: bool) -> Any:
    """bf16 autocast on ``device`` when ``enabled`` (the training step's mixed precision)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


@contextmanager
def evaluating(model: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """The unwrapped model on ``device`` in eval mode; its train/eval mode is restored afterwards."""
    module = unwrap(model)
    was_training = module.training
    module.to(device).eval()
    try:
        yield module
    finally:
        module.train(was_training)
