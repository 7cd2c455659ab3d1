"""The semantic neuron graph (DSSPN 3.1), per-dataset concept masks (3.4) and per-neuron output targets.

A neuron sits at every concept where a decision is needed: a concept with at least two children, and a concept
that some dataset labels while the tree continues below it (:func:`self_concepts`). A neuron classifies a pixel
among its children and, for the second kind, its *self* output, "this concept itself, none of its children"
(ADE20K's ``tree`` against its only child ``palm``; Cityscapes' ``building`` against ``bridge`` and ``tunnel``).

A pixel labelled with concept ``c`` is routed from the root neuron down the path to ``c``: each neuron on the way
is trained to pick the child on that path. Where the pixel's dataset also labels concepts below ``c``, the
dataset's label means "``c`` and none of them", and ``c``'s neuron is trained to pick its self output. Otherwise
the neurons at or below ``c`` never see the pixel (their target is :data:`IGNORE_INDEX`), which is how a coarse
label (ADE20K's ``animal``) supervises its ancestors and deactivates the neurons below it.

Targets are built with lookup tables: one ``(neurons, values)`` table per dataset turns a label map of the
dataset's own ids into every neuron's output targets in one gather.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from hierseg.core.errors import HiersegError
from hierseg.taxonomy.labelspace import LabelSpace, label_space
from hierseg.taxonomy.tree import Taxonomy, require_taxonomy

IGNORE_INDEX = 255  # child target of a pixel a neuron must not learn from


def self_concepts(taxonomy: Taxonomy, datasets: Sequence[str] | None = None) -> tuple[str, ...]:
    """Concepts that need a *self* output: labelled by one of ``datasets`` (default: all the tree covers) while the
    tree continues below them. A pixel there may stop at the concept itself, so a model must be able to say so:
    DSSPN's neuron gets a self output, a flat universal head a ``"<concept>/other"`` output. Artifact order."""
    names = taxonomy.datasets if datasets is None else tuple(datasets)
    labelled = {c for d in names for c in taxonomy.dataset_concepts(d).values()}
    return tuple(c.id for c in taxonomy if c.id in labelled and not taxonomy.is_leaf(c.id))


@dataclass(frozen=True)
class Neuron:
    index: int
    concept: str
    depth: int
    children: tuple[str, ...]
    ancestors: tuple[int, ...]  # indices of the ancestor neurons, root first
    has_self: bool = False  # a last output for "this concept itself" (see :func:`self_concepts`)

    @property
    def parent(self) -> int | None:
        return self.ancestors[-1] if self.ancestors else None

    @property
    def outputs(self) -> tuple[str, ...]:
        """The concept each output stands for: the children, then the neuron's own concept for its self output."""
        return self.children + ((self.concept,) if self.has_self else ())

    @property
    def self_index(self) -> int | None:
        return len(self.children) if self.has_self else None


@dataclass(frozen=True)
class ConceptMask:
    """Which outputs of each neuron a dataset defines: the children on the path to one of its labels, and the
    self output wherever a child is defined (the dataset's pixels there say whether they are the concept itself)."""

    dataset: str
    defined: tuple[np.ndarray, ...]  # per neuron, a bool array over its outputs

    @cached_property
    def active(self) -> np.ndarray:
        """Per neuron: does the dataset supervise it at all (at least one defined output)?"""
        return np.array([d.any() for d in self.defined], dtype=bool)

    def matrix(self, width: int | None = None) -> np.ndarray:
        """``(neurons, width)`` bool matrix, outputs left-aligned and padded with False, for batched masking."""
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
        selfish = set(self_concepts(taxonomy))
        inner = [cid for cid in self.concepts if len(taxonomy.children(cid)) >= 2 or cid in selfish]
        inner.sort(key=lambda cid: (taxonomy[cid].depth, self.concept_index[cid]))
        self.index: dict[str, int] = {cid: i for i, cid in enumerate(inner)}
        self.neurons: tuple[Neuron, ...] = tuple(
            Neuron(i, cid, taxonomy[cid].depth, taxonomy.children(cid),
                   tuple(self.index[a] for a in reversed(taxonomy.ancestors(cid)) if a in self.index),
                   cid in selfish)
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
                raise HiersegError(f"concept {key!r} is not a neuron (fewer than two children and no label on it)")
            key = self.index[key]
        return self.neurons[key]

    @property
    def max_outputs(self) -> int:
        return max(len(n.outputs) for n in self.neurons)

    @cached_property
    def inseparable(self) -> tuple[str, ...]:
        """Concepts no decision tells apart from their parent: only children of a concept without a neuron (one
        that no dataset labels, so any pixel there belongs to the child's subtree)."""
        return tuple(cid for cid in self.concepts
                     if (p := self.taxonomy[cid].parent) is not None and p not in self.index)

    def route(self, concept: str, stop: bool = False) -> tuple[tuple[int, int], ...]:
        """``(neuron, output index)`` decisions from the root neuron down to ``concept``; with ``stop``, ending with
        the self output of ``concept``'s neuron where it has one (the pixel is the concept itself)."""
        path = self.taxonomy.path(concept)
        steps = tuple((self.index[a], self.neurons[self.index[a]].children.index(b))
                      for a, b in zip(path, path[1:], strict=False) if a in self.index)
        if stop and concept in self.index and (n := self.neurons[self.index[concept]]).has_self:
            steps += ((n.index, n.self_index),)
        return steps

    def stops(self, dataset: str, concept: str) -> bool:
        """Does a pixel of ``dataset`` labelled ``concept`` need its self decision? Yes where the dataset also
        labels concepts below it: its label then means "``concept`` and none of those"."""
        n = self.index.get(concept)
        return n is not None and self.neurons[n].has_self and bool(self.mask(dataset).defined[n].any())

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
            defined = []
            for n in self.neurons:
                children = [c in on_paths for c in n.children]
                defined.append(np.array(children + [any(children)] * n.has_self, dtype=bool))
            self._masks[dataset] = ConceptMask(dataset, tuple(defined))
        return self._masks[dataset]

    def target_table(self, dataset: str) -> np.ndarray:
        """``(neurons, values)`` uint8 table: the output each neuron must predict for each label value.

        :data:`IGNORE_INDEX` where the value's concept is not below the neuron (nor on it, with the dataset's labels
        continuing below: then the target is its self output), and for void, ignore and undefined values.
        """
        if dataset not in self._luts:
            space = self.space(dataset)
            table = np.full((len(self), space.size), IGNORE_INDEX, dtype=np.uint8)
            for value, concept in space.concepts.items():
                if concept is not None:
                    for neuron, output in self.route(concept, stop=self.stops(dataset, concept)):
                        table[neuron, value] = output
            table.setflags(write=False)
            self._luts[dataset] = table
        return self._luts[dataset]

    def targets(self, dataset: str, label: Any, neurons: Sequence[int] | None = None) -> Any:
        """Per-neuron output targets of a label map (numpy array or torch tensor of ``dataset``'s ids, any shape).

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


def neuron_graph(taxonomy: Taxonomy | None = None) -> NeuronGraph:
    """The neuron graph of a model's ``taxonomy`` argument (``None``: the shipped 359-concept tree). A path is read
    into a :class:`Taxonomy` where it enters (config, checkpoint, CLI option), never here."""
    taxonomy = require_taxonomy(taxonomy)
    return NeuronGraph(taxonomy if taxonomy is not None else Taxonomy.load())
