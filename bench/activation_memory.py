"""Measuring activation memory: bytes of the tensors autograd saves for backward (a bench instrument, used by
``dsspn_bench.py``, through it ``gpu_check.py``, and the memory-efficient block's test; not part of the library)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


@dataclass
class SavedBytes:
    """Unique storages saved for backward inside the context (parameters left out); ``total`` in bytes."""

    storages: dict[int, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.storages.values())


@contextmanager
def saved_activations() -> Iterator[SavedBytes]:
    """Count what the autograd graph keeps alive: each storage once, however many ops save it.

    Counting storages rather than saved tensors matters for DSSPN: an ancestor's output read by many descendants is
    one allocation, which is the point of the memory-efficient block (paper 3.6).
    """
    saved = SavedBytes()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if not isinstance(tensor, torch.nn.Parameter):
            storage = tensor.untyped_storage()
            saved.storages.setdefault(storage.data_ptr(), storage.nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield saved
