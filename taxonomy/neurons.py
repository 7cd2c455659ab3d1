"""The semantic neuron graph (DSSPN 3.1), per-dataset concept masks (3.4) and per-neuron child targets.

A neuron is a concept with at least two children; it classifies a pixel among its children. A pixel labelled
with concept ``c`` is routed from the root neuron down the path to ``c``: each neuron on the way is trained to
pick the child on that path. Neurons at or below ``c`` never see the pixel (their target is :data:`IGNORE_INDEX`),
which is how a coarse label (ADE20K's ``animal``) supervises its ancestors and deactivates the neurons below it.

Targets are built with lookup tables: one ``(neurons, values)`` table per dataset turns a label map of the
dataset's own ids into every neuron's child targets in one gather.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from hierseg.taxonomy.errors import HiersegError
from hierseg.taxonomy.labelspace import LabelSpace, label_space
from hierseg.taxonomy.tree import Taxonomy

IGNORE_INDEX = 255  # child target of a pixel a neuron must not learn from


@dataclass(frozen=True)
class Neuron:
    index: int
    concept: str
    depth: int
    children: tuple[str, ...]
    ancestors: tuple[int, ...]  # indices of the ancestor neurons, root first

    @property
    def parent(self) -> int | None:
        return self.ancestors[-1] if self.ancestors else None


@dataclass(frozen=True)
class ConceptMask:
    """Which child outputs of each neuron a dataset defines (children on the path to one of its labels)."""

    dataset: str
    defined: tuple[np.ndarray, ...]  # per neuron, a bool array over its children

    @cached_property
    def active(self) -> np.ndarray:
        """Per neuron: does the dataset supervise it at all (at least one defined child)?"""
        return np.array([d.any() for d in self.defined], dtype=bool)

    def matrix(self, width: int | None = None) -> np.ndarray:
        """``(neurons, width)`` bool matrix, children left-aligned and padded with False, for batched masking."""
        width = width or max(len(d) for d in self.defined)
        out = np.zeros((len(self.defined), width), dtype=bool)
        for row, d in enumerate(self.defined):
            out[row, : len(d)] = d
        return out


def is_tensor(value: Any) -> bool:
    """True for a torch tensor, without importing torch."""
    return type(value).__module__.startswith("torch")


def check_values(label: Any, size: int, where: str) -> None:
    """Reject values a lookup table of length ``size`` cannot index (numpy would wrap negatives silently)."""
    if label.numel() == 0 if is_tensor(label) else label.size == 0:
        return
    top, low = int(label.max()), int(label.min())
    if top >= size or low < 0:
        bad = top if top >= size else low
        raise HiersegError(f"{where}: label value {bad} is outside the ids 0..{size - 1}")


def gather_rows(table: np.ndarray, label: Any) -> Any:
    """``table[:, label]`` for a numpy array or a torch tensor (on the tensor's device): shape ``(rows, *label.shape)``."""
    if is_tensor(label):
        import torch

        return torch.tensor(table, device=label.device)[:, label.long()]  # a copy: the table is read-only
    return np.take(table, label, axis=1)


class NeuronGraph:
    """Neurons of a :class:`Taxonomy` in depth order (parents before children), with per-dataset tables."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.concepts: tuple[str, ...] = tuple(c.id for c in taxonomy)  # artifact order = tree label values
        self.concept_index = {cid: i for i, cid in enumerate(self.concepts)}
        inner = [cid for cid in self.concepts if len(taxonomy.children(cid)) >= 2]
        inner.sort(key=lambda cid: (taxonomy[cid].depth, self.concept_index[cid]))
        self.index: dict[str, int] = {cid: i for i, cid in enumerate(inner)}
        self.neurons: tuple[Neuron, ...] = tuple(
            Neuron(i, cid, taxonomy[cid].depth, taxonomy.children(cid),
                   tuple(self.index[a] for a in reversed(taxonomy.ancestors(cid)) if a in self.index))
            for i, cid in enumerate(inner)
        )
        self._spaces: dict[str, LabelSpace] = {}
        self._masks: dict[str, ConceptMask] = {}
        self._luts: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.neurons)

    def __getitem__(self, key: int | str) -> Neuron:
        if isinstance(key, str):
            if key not in self.index:
                raise HiersegError(f"concept {key!r} is not a neuron (it has fewer than two children)")
            key = self.index[key]
        return self.neurons[key]

    @property
    def max_children(self) -> int:
        return max(len(n.children) for n in self.neurons)

    @cached_property
    def inseparable(self) -> tuple[str, ...]:
        """Concepts that are the only child of their parent: no neuron tells them apart from the parent."""
        return tuple(cid for cid in self.concepts
                     if (p := self.taxonomy[cid].parent) is not None and len(self.taxonomy.children(p)) == 1)

    def route(self, concept: str) -> tuple[tuple[int, int], ...]:
        """``(neuron, child index)`` decisions from the root neuron down to ``concept``."""
        path = self.taxonomy.path(concept)
        return tuple((self.index[a], self.neurons[self.index[a]].children.index(b))
                     for a, b in zip(path, path[1:], strict=False) if a in self.index)

    def space(self, dataset: str) -> LabelSpace:
        if dataset not in self._spaces:
            self._spaces[dataset] = label_space(self.taxonomy, dataset)
        return self._spaces[dataset]

    def mask(self, dataset: str) -> ConceptMask:
        """The concept mask of ``dataset`` (DSSPN 3.4): children off every path to its labels are undefined."""
        if dataset not in self._masks:
            on_paths: set[str] = set()
            for concept in self.space(dataset).concepts.values():
                if concept is not None:
                    on_paths.update(self.taxonomy.path(concept))
            defined = tuple(np.array([c in on_paths for c in n.children], dtype=bool) for n in self.neurons)
            self._masks[dataset] = ConceptMask(dataset, defined)
        return self._masks[dataset]

    def target_table(self, dataset: str) -> np.ndarray:
        """``(neurons, values)`` uint8 table: the child index each neuron must predict for each label value.

        :data:`IGNORE_INDEX` where the value's concept is not strictly below the neuron, and for void, ignore and
        undefined values.
        """
        if dataset not in self._luts:
            space = self.space(dataset)
            table = np.full((len(self), space.size), IGNORE_INDEX, dtype=np.uint8)
            for value, concept in space.concepts.items():
                if concept is not None:
                    for neuron, child in self.route(concept):
                        table[neuron, value] = child
            table.setflags(write=False)
            self._luts[dataset] = table
        return self._luts[dataset]

    def targets(self, dataset: str, label: Any, neurons: Sequence[int] | None = None) -> Any:
        """Per-neuron child targets of a label map (numpy array or torch tensor of ``dataset``'s ids, any shape).

        Returns ``(len(neurons), *label.shape)`` uint8 (same array type and device as ``label``), all neurons in
        depth order by default. Pass the activated neurons (:func:`~hierseg.taxonomy.subgraph.activated_batch`)
        to build only those.
        """
        table = self.target_table(dataset)
        check_values(label, table.shape[1], dataset)
        if neurons is not None:
            table = table[list(neurons)]
        return gather_rows(table, label)

    def activation_table(self, dataset: str) -> np.ndarray:
        """``(values, neurons)`` bool table: the neurons a pixel of each label value activates."""
        key = f"activation:{dataset}"
        if key not in self._luts:
            table = np.ascontiguousarray((self.target_table(dataset) != IGNORE_INDEX).T)
            table.setflags(write=False)
            self._luts[key] = table
        return self._luts[key]
