"""What a flat model's output channels mean, and the loss and decoding that follow from it.

A flat model (DeepLab, PDN, DSNet, SPGNet) produces ``num_outputs`` score maps; an :class:`Outputs` object turns
a label map of a dataset's own ids into its per-pixel loss and turns scores back into the dataset's ids:

- :class:`RawClasses`: labels already are class indices ``0..C-1`` (ignore 255), as in the papers' tables;
- :class:`DatasetClasses`: one dataset's labels that have a concept, in id order (single-dataset training);
- ``LeafClasses`` (:mod:`hierseg.models.universal`): one output per leaf of the tree, for joint training.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
import torch.nn.functional as F

from hierseg.core.errors import HiersegError
from hierseg.taxonomy.neurons import NeuronGraph

IGNORE = 255


def resize_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class Outputs(ABC):
    num_outputs: int
    datasets: tuple[str, ...]  # label spaces the model can be trained on and decode into

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


class RawClasses(Outputs):
    """Labels are class indices ``0..num_classes-1``; ``ignore_index`` pixels are left out."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE) -> None:
        self.num_outputs = num_classes
        self.ignore_index = ignore_index
        self.datasets = ()

    def pixel_loss(self, logits, label, dataset):
        logits = resize_logits(logits, label.shape[-2:])
        loss = F.cross_entropy(logits.float(), label.long(), ignore_index=self.ignore_index, reduction="none")
        return loss, label != self.ignore_index

    def decode(self, logits, dataset):
        return logits.argmax(1)


class DatasetClasses(Outputs):
    """One dataset's labels that carry a concept (void and ignore ids are left out), ordered by id."""

    def __init__(self, graph: NeuronGraph, dataset: str) -> None:
        space = graph.space(dataset)
        self.dataset = dataset
        self.datasets = (dataset,)
        self.ids = np.array([v for v, c in sorted(space.concepts.items()) if c is not None], dtype=np.int64)
        self.num_outputs = len(self.ids)
        lut = np.full(space.size, IGNORE, dtype=np.int64)
        lut[self.ids] = np.arange(len(self.ids))
        self._lut = torch.from_numpy(lut)
        self._ids = torch.from_numpy(self.ids)

    def classes(self, label: torch.Tensor) -> torch.Tensor:
        """Dataset ids to class indices (255 for void and ignore)."""
        lut = self._lut.to(label.device)
        if label.numel() and (int(label.min()) < 0 or int(label.max()) >= len(lut)):
            raise HiersegError(f"{self.dataset}: label value outside the ids 0..{len(lut) - 1}")
        return lut[label.long()]

    def pixel_loss(self, logits, label, dataset):
        self.check_dataset(dataset)
        target = self.classes(label)
        logits = resize_logits(logits, label.shape[-2:])
        return F.cross_entropy(logits.float(), target, ignore_index=IGNORE, reduction="none"), target != IGNORE

    def decode(self, logits, dataset):
        self.check_dataset(dataset)
        return self._ids.to(logits.device)[logits.argmax(1)]


def neuron_graph(taxonomy: object = None) -> NeuronGraph:
    """A :class:`NeuronGraph` from a graph, a :class:`~hierseg.taxonomy.tree.Taxonomy`, an artifact path, or
    ``None`` (the shipped 359-concept tree)."""
    from hierseg.taxonomy.tree import Taxonomy

    if isinstance(taxonomy, NeuronGraph):
        return taxonomy
    if isinstance(taxonomy, Taxonomy):
        return NeuronGraph(taxonomy)
    return NeuronGraph(Taxonomy.load(taxonomy) if taxonomy is not None else Taxonomy.load())


def make_outputs(num_classes: int | None = None, datasets: tuple[str, ...] | list[str] | str | None = None,
                 taxonomy: object = None) -> Outputs:
    """The outputs of a flat model: raw classes when ``num_classes`` is given, else one dataset's labels, else
    (several datasets) the tree's leaves with the taxonomy-aware loss."""
    if num_classes is not None:
        if datasets:
            raise HiersegError("give either num_classes (raw class indices) or datasets (label spaces), not both")
        if num_classes < 1:
            raise HiersegError(f"num_classes must be at least 1, not {num_classes}")
        return RawClasses(num_classes)
    if not datasets:
        raise HiersegError("a flat model needs num_classes=N or datasets=[...]")
    datasets = (datasets,) if isinstance(datasets, str) else tuple(datasets)
    graph = neuron_graph(taxonomy)
    if len(datasets) == 1:
        return DatasetClasses(graph, datasets[0])
    from hierseg.models.universal import LeafClasses

    return LeafClasses(graph, datasets)
