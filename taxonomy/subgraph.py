"""Activated semantic-neuron sub-graphs (DSSPN 3.3) of one annotation and of a batch.

A neuron is activated by an image when one of the image's concepts lies strictly below it: the neurons on the
ancestor paths of the concepts present. Neurons at or below a coarse label's concept stay deactivated. For a batch
(3.5) the sub-graph is the union, and each neuron knows which images activate it, so a model can run shared
neurons on the whole batch and the rest on their images only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hierseg.taxonomy.neurons import NeuronGraph, check_values, is_tensor


@dataclass(frozen=True)
class ActivatedBatch:
    matrix: np.ndarray  # (images, neurons) bool: image i activates neuron n

    @property
    def neurons(self) -> tuple[int, ...]:
        """Union over the batch, in depth order."""
        return tuple(int(n) for n in np.flatnonzero(self.matrix.any(axis=0)))

    @property
    def images(self) -> dict[int, tuple[int, ...]]:
        """For each activated neuron, the indices of the images that activate it."""
        return {n: tuple(int(i) for i in np.flatnonzero(self.matrix[:, n])) for n in self.neurons}

    @property
    def shared(self) -> tuple[int, ...]:
        """Neurons every image activates: these can run batched on the whole batch."""
        if not len(self.matrix):
            return ()
        return tuple(int(n) for n in np.flatnonzero(self.matrix.all(axis=0)))

    def per_image(self, index: int) -> tuple[int, ...]:
        return tuple(int(n) for n in np.flatnonzero(self.matrix[index]))


def present_values(label: Any, size: int) -> np.ndarray:
    """Bool array over ``range(size)``: which values occur in one label map (numpy or torch)."""
    if is_tensor(label):
        import torch

        counts = torch.bincount(label.reshape(-1).long(), minlength=size).cpu().numpy()
    else:
        counts = np.bincount(np.asarray(label).reshape(-1), minlength=size)
    return counts[:size] > 0


def activated_batch(graph: NeuronGraph, dataset: str, labels: Any) -> ActivatedBatch:
    """Sub-graph of a batch of label maps of ``dataset``: a sequence of 2-D maps or one ``(B, H, W)`` array."""
    table = graph.activation_table(dataset)
    rows = []
    for label in labels:
        check_values(label, table.shape[0], dataset)
        present = present_values(label, table.shape[0])
        rows.append(table[present].any(axis=0))
    matrix = np.array(rows, dtype=bool).reshape(len(rows), len(graph))
    return ActivatedBatch(matrix)


def activated_neurons(graph: NeuronGraph, dataset: str, label: Any) -> tuple[int, ...]:
    """Neurons activated by one label map of ``dataset``, in depth order."""
    return activated_batch(graph, dataset, [label]).neurons
