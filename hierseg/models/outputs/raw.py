"""Raw class indices: labels already are ``0..C-1`` (ignore 255), as in the papers' tables."""

from __future__ import annotations

import torch.nn.functional as F

from hierseg.models.layers import resize
from hierseg.models.outputs.base import Outputs
from hierseg.taxonomy.neurons import IGNORE_INDEX
from hierseg.taxonomy.tree import Taxonomy


class RawClasses(Outputs):
    """Labels are class indices ``0..num_classes-1``; ``ignore_index`` pixels are left out."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, *, taxonomy: Taxonomy | None = None) -> None:
        self.num_outputs = num_classes
        self.taxonomy = taxonomy  # the tree the datasets' ids are read in (evaluation), if the model was given one
        self.ignore_index = ignore_index
        self.datasets = ()

    def pixel_loss(self, logits, label, dataset):
        logits = resize(logits, label.shape[-2:])
        loss = F.cross_entropy(logits.float(), label.long(), ignore_index=self.ignore_index, reduction="none")
        return loss, label != self.ignore_index

    def decode(self, logits, dataset):
        return logits.argmax(1)
