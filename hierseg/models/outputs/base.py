"""The interface of a flat model's output strategy: per-pixel loss from a label map, ids from scores."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from hierseg.core.errors import HiersegError
from hierseg.taxonomy.tree import Taxonomy


class Outputs(ABC):
    num_outputs: int
    datasets: tuple[str, ...]  # label spaces the model can be trained on and decode into
    taxonomy: Taxonomy | None = None  # the tree the outputs were made on (raw classes: the one given, if any)

    @abstractmethod
    def pixel_loss(self, logits: torch.Tensor, label: torch.Tensor,
                   dataset: str | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel loss ``(B, H, W)`` and its valid mask, scores resized to the label's size."""

    @abstractmethod
    def decode(self, logits: torch.Tensor, dataset: str | None) -> torch.Tensor:
        """``(B, H, W)`` int64 ids in ``dataset``'s label space."""

    def loss(self, logits: torch.Tensor, label: torch.Tensor, dataset: str | None) -> torch.Tensor:
        """Mean of :meth:`pixel_loss` over valid pixels (0 with a gradient when the batch has none)."""
        loss, valid = self.pixel_loss(logits, label, dataset)
        return (loss * valid).sum() / valid.sum().clamp(min=1)

    def check_dataset(self, dataset: str | None) -> str | None:
        if self.datasets and dataset is not None and dataset not in self.datasets:
            raise HiersegError(f"this model was built for {', '.join(self.datasets)}, not {dataset!r}")
        return dataset
