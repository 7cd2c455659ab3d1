"""Universal (multi-dataset) outputs: one score per leaf of the tree, trained with a taxonomy-aware loss.

A flat model trained on several datasets at once cannot give each dataset its own classifier without losing what
the datasets share, and cannot use one dataset's ids because the datasets label at different granularities
(ADE20K's ``animal`` against COCO-Stuff's ``dog`` and ``cat``). :class:`LeafClasses` scores the finest concepts
the tree knows, its leaves, and reads a dataset label as the *set* of outputs it covers:

- a label's set holds the outputs under its concept, minus those under the same dataset's labels nested below it
  (Mapillary's ``road`` is "road that is not a lane marking": the extent of :mod:`hierseg.taxonomy.translate`);
- an inner concept that one of the datasets labels gets an extra ``"<concept>/other"`` output, so that such a
  label is expressible even when the dataset labels every child as well;
- a pixel labelled ``v`` of dataset ``D`` costs ``-log(sum_{o in set(v)} p_o / sum_{o in expressible(D)} p_o)``
  with ``p`` the softmax over all outputs, where ``expressible(D)`` is the union of ``D``'s sets (its concept
  mask). A coarse label is satisfied by any leaf under it, and outputs ``D`` cannot express get no gradient from
  ``D``'s pixels, so datasets that ignore a distinction do not push against those that make it.

With one dataset whose labels are exactly the leaves this is plain softmax cross-entropy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hierseg.core.errors import HiersegError
from hierseg.models.layers import resize
from hierseg.models.outputs.base import Outputs
from hierseg.taxonomy.labelspace import LabelSpace
from hierseg.taxonomy.neurons import NeuronGraph, self_concepts
from hierseg.taxonomy.translate import owners
from hierseg.taxonomy.tree import Taxonomy

OTHER = "other"  # suffix of the extra output of a labelled inner concept: "<concept>/other"


@dataclass(frozen=True)
class _Tables:
    """One dataset's lookup tables, on one device."""

    member: torch.Tensor  # (size, outputs) bool: the set of each label value; invalid values hold the whole mask
    valid: torch.Tensor  # (size,) bool: values that carry a concept (not void, not ignore)
    expressible: torch.Tensor  # (outputs,) bool: the dataset's concept mask over the outputs
    expressible_index: torch.Tensor  # (n,) int64: the same as indices
    value_of: torch.Tensor  # (outputs,) int64: the label value whose set holds each output (ignore where none)


class LeafClasses(Outputs):
    """One output per leaf of the tree plus one ``"<concept>/other"`` per inner concept one of ``datasets`` labels.

    Outputs follow the tree's artifact order (an ``other`` output sits where its concept does). ``names`` are the
    output names, ``concepts`` each output's concept id.
    """

    def __init__(self, graph: NeuronGraph, datasets: Sequence[str]) -> None:
        datasets = tuple(datasets)
        if not datasets:
            raise HiersegError("universal outputs need at least one dataset (datasets=[...])")
        if len(set(datasets)) != len(datasets):
            twice = next(d for d in datasets if datasets.count(d) > 1)
            raise HiersegError(f"datasets lists {twice!r} twice; name each dataset once")
        tax = graph.taxonomy
        self.graph = graph
        self.taxonomy = tax
        self.datasets = datasets
        self.spaces: dict[str, LabelSpace] = {d: graph.space(d) for d in datasets}
        stops = set(self_concepts(tax, datasets))
        names: list[str] = []
        concepts: list[str] = []
        for cid in graph.concepts:
            if tax.is_leaf(cid):
                names.append(cid)
            elif cid in stops:
                names.append(f"{cid}/{OTHER}")
            else:
                continue
            concepts.append(cid)
        self.names: tuple[str, ...] = tuple(names)
        self.concepts: tuple[str, ...] = tuple(concepts)
        self.num_outputs = len(names)
        self._concept_index = torch.tensor([graph.concept_index[c] for c in concepts], dtype=torch.int64)
        self._owner_values = {d: self._owner_values_of(tax, space) for d, space in self.spaces.items()}
        self._cache: dict[tuple[str, torch.device], _Tables] = {}

    def _owner_values_of(self, tax: Taxonomy, space: LabelSpace) -> np.ndarray:
        """Per output, the value of ``space`` whose set holds it, or -1 (the dataset cannot express it)."""
        owner = owners(tax, space)
        return np.array([-1 if owner[c] is None else owner[c] for c in self.concepts], dtype=np.int64)

    def label_outputs(self, dataset: str) -> dict[int, tuple[int, ...]]:
        """The set of each of ``dataset``'s labelled values, as output indices."""
        self._check(dataset)
        values = self._owner_values[dataset]
        space = self.spaces[dataset]
        return {v: tuple(np.flatnonzero(values == v).tolist()) for v, c in space.concepts.items() if c is not None}

    def expressible(self, dataset: str) -> np.ndarray:
        """``(outputs,)`` bool: the outputs ``dataset``'s labels can tell (its concept mask)."""
        self._check(dataset)
        return self._owner_values[dataset] >= 0

    def _check(self, dataset: str | None) -> str:
        if dataset is None:
            raise HiersegError("a universal model needs the dataset of each label map (pass dataset=...)")
        if dataset not in self.datasets:
            raise HiersegError(f"this model was built for {', '.join(self.datasets)}, not {dataset!r}")
        return dataset

    def _tables(self, dataset: str | None, device: torch.device) -> _Tables:
        dataset = self._check(dataset)
        key = (dataset, device)
        if key not in self._cache:
            space = self.spaces[dataset]
            values = self._owner_values[dataset]
            outputs = np.flatnonzero(values >= 0)
            expressible = values >= 0
            valid = np.zeros(space.size, dtype=bool)
            valid[[v for v, c in space.concepts.items() if c is not None]] = True
            # Void, ignore and unused values get the whole mask as their set, so their loss is exactly 0 and no
            # logsumexp ever runs over an empty set (whose gradient would be NaN even when multiplied by 0).
            member = np.repeat(expressible[None], space.size, axis=0)
            member[np.flatnonzero(valid)] = False
            member[values[outputs], outputs] = True
            value_of = np.where(expressible, values, space.ignore)
            arrays = (member, valid, expressible, outputs, value_of)
            with torch.inference_mode(False):  # built during an evaluation, the tables still serve training later
                self._cache[key] = _Tables(*(torch.from_numpy(a).to(device) for a in arrays))
        return self._cache[key]

    def pixel_loss(self, logits, label, dataset):
        tables = self._tables(dataset, label.device)
        size = len(tables.valid)
        if label.numel() and (int(label.min()) < 0 or int(label.max()) >= size):
            raise HiersegError(f"{dataset}: label value outside the ids 0..{size - 1}")
        label = label.long()
        logits = resize(logits, label.shape[-2:]).float()
        member = tables.member[label].movedim(-1, 1)  # (B, outputs, H, W)
        target = logits.masked_fill(~member, float("-inf")).logsumexp(1)
        mask = logits.index_select(1, tables.expressible_index).logsumexp(1)
        valid = tables.valid[label]
        return torch.where(valid, mask - target, torch.zeros_like(mask)), valid

    def decode(self, logits, dataset):
        """Dataset ids (argmax over the dataset's mask), or with ``dataset=None`` the tree's concept indices."""
        if dataset is None:
            return self._concept_index.to(logits.device)[logits.argmax(1)]
        tables = self._tables(dataset, logits.device)
        masked = logits.masked_fill(~tables.expressible.view(1, -1, 1, 1), float("-inf"))
        return tables.value_of[masked.argmax(1)]
