"""One dataset's own classes: its labels that carry a concept, in id order (single-dataset training)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hierseg.core.errors import HiersegError
from hierseg.models.layers import resize
from hierseg.models.outputs.base import Outputs
from hierseg.taxonomy.neurons import IGNORE_INDEX, NeuronGraph


class DatasetClasses(Outputs):
    """One dataset's labels that carry a concept (void and ignore ids are left out), ordered by id."""

    def __init__(self, graph: NeuronGraph, dataset: str) -> None:
        space = graph.space(dataset)
        self.graph, self.space = graph, space  # each output is a label of ``space``, a concept of graph's tree
        self.taxonomy = graph.taxonomy
        self.dataset = dataset
        self.datasets = (dataset,)
        self.ids = np.array([v for v, c in sorted(space.concepts.items()) if c is not None], dtype=np.int64)
        self.num_outputs = len(self.ids)
        lut = np.full(space.size, IGNORE_INDEX, dtype=np.int64)
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
        logits = resize(logits, label.shape[-2:])
        return (F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX, reduction="none"),
                target != IGNORE_INDEX)

    def decode(self, logits, dataset):
        self.check_dataset(dataset)
        return self._ids.to(logits.device)[logits.argmax(1)]
