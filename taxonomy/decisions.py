"""Where hierarchical inference may go: the decision plan over a :class:`NeuronGraph` for one label space.

DSSPN predicts top-down (paper 3.3): a pixel starts at the root and each neuron it reaches sends it to one of the
neuron's outputs, a child or the neuron's own concept (its self output), until it comes to rest. A
:class:`DecisionPlan` fixes, for one dataset or for the tree itself, which outputs may be chosen and where a pixel
then rests; the model only supplies the scores. Because the plan is plain data, what inference *can* output is
known before a model is trained: :meth:`DecisionPlan.unpredictable` lists the labels no sequence of decisions
reaches (``hierseg models info --dataset D`` reports them).

- For a dataset, a neuron may choose the children on the paths to the dataset's labels, and its self output where
  the dataset labels the neuron's concept; a pixel rests at a labelled concept the dataset does not split further.
  An unlabelled concept with one child and no neuron passes the pixel on to that child (no decision is needed).
- For the tree (``dataset=None``), every output may be chosen and a pixel rests where the last decision put it:
  tree-space output is the deepest concept a neuron decided, never a guess further down a single-child chain.
- For a dataset the model never trained on (:func:`extent_plan`, zero-shot through the tree): a neuron may choose
  every output whose concepts lie in some label's extent, and a pixel rests as soon as everything below it belongs
  to one label (no decision further down can change the answer). The top-down counterpart of summing a flat
  model's probabilities over each label's extent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hierseg.taxonomy.labelspace import LabelSpace
from hierseg.taxonomy.neurons import NeuronGraph
from hierseg.taxonomy.translate import owners


@dataclass(frozen=True)
class DecisionPlan:
    """Arrays over concept indices (``graph.concepts``) and neurons that drive top-down inference."""

    dataset: str | None
    start: int  # concept index a pixel starts at (the root, or the end of a chain below it)
    settle: np.ndarray  # (concepts,) int64: where a pixel sent to concept c rests before the next decision
    stop: np.ndarray  # (concepts,) bool: a pixel resting at c is finished
    allowed: np.ndarray  # (neurons, max_outputs) bool: outputs each neuron may choose
    target: np.ndarray  # (neurons, max_outputs) int64: concept index each output sends a pixel to
    is_self: np.ndarray  # (neurons, max_outputs) bool: the output is the neuron's self output
    concept: np.ndarray  # (neurons,) int64: each neuron's own concept index
    label: np.ndarray  # (concepts,) int64: the dataset's id for each concept (its ignore id where none); tree: c

    def terminals(self) -> np.ndarray:
        """``(concepts,)`` bool: concepts at which some sequence of allowed decisions leaves a pixel."""
        neuron_at = {int(c): n for n, c in enumerate(self.concept)}
        seen = np.zeros(len(self.settle), dtype=bool)
        out = np.zeros(len(self.settle), dtype=bool)
        todo = [self.start]
        while todo:
            c = todo.pop()
            if seen[c]:
                continue
            seen[c] = True
            if self.stop[c]:
                out[c] = True
                continue
            n = neuron_at[c]
            for k in np.flatnonzero(self.allowed[n]):
                if self.is_self[n, k]:
                    out[c] = True
                else:
                    todo.append(int(self.settle[self.target[n, k]]))
        return out

    def reachable_neurons(self) -> np.ndarray:
        """``(neurons,)`` bool: neurons some pixel can reach (the ones path inference must run)."""
        neuron_at = {int(c): n for n, c in enumerate(self.concept)}
        out = np.zeros(len(self.concept), dtype=bool)
        todo = [self.start]
        while todo:
            c = todo.pop()
            if self.stop[c] or out[neuron_at[c]]:
                continue
            n = neuron_at[c]
            out[n] = True
            todo.extend(int(self.settle[self.target[n, k]]) for k in np.flatnonzero(self.allowed[n] & ~self.is_self[n]))
        return out

    def unpredictable(self, graph: NeuronGraph) -> tuple[int, ...]:
        """The dataset's label ids whose concept no sequence of allowed decisions reaches (empty for the tree)."""
        if self.dataset is None:
            return ()
        terminals = self.terminals()
        space = graph.space(self.dataset)
        return tuple(v for v, c in sorted(space.concepts.items())
                     if c is not None and not terminals[graph.concept_index[c]])


def decision_plan(graph: NeuronGraph, dataset: str | None = None) -> DecisionPlan:
    """The plan of top-down inference into ``dataset``'s labels, or into the tree's concepts (``None``)."""
    tax = graph.taxonomy
    idx = graph.concept_index
    width = graph.max_outputs
    labelled: set[str] = set()
    label = np.arange(len(graph.concepts), dtype=np.int64)
    allowed = np.zeros((len(graph), width), dtype=bool)
    if dataset is not None:
        space = graph.space(dataset)
        label[:] = space.ignore
        for value, concept in space.concepts.items():
            if concept is not None:
                labelled.add(concept)
                label[idx[concept]] = value
        defined = graph.mask(dataset).matrix(width)
        for n in graph.neurons:
            allowed[n.index, : len(n.children)] = defined[n.index, : len(n.children)]
            if n.has_self and n.concept in labelled:
                allowed[n.index, n.self_index] = allowed[n.index, : len(n.children)].any()
    else:
        for n in graph.neurons:
            allowed[n.index, : len(n.outputs)] = True
    settle = np.arange(len(graph.concepts), dtype=np.int64)
    if dataset is not None:
        for c in graph.concepts:
            cur = c
            while cur not in graph.index and cur not in labelled and len(tax.children(cur)) == 1:
                cur = tax.children(cur)[0]
            settle[idx[c]] = idx[cur]
    stop = np.zeros(len(graph.concepts), dtype=bool)
    for c in graph.concepts:
        n = graph.index.get(c)
        stop[idx[c]] = n is None or not allowed[n].any()
    target, is_self, concept = _wiring(graph)
    plan = DecisionPlan(dataset, int(settle[idx[tax.root]]), settle, stop, allowed, target, is_self, concept, label)
    for array in (settle, stop, allowed, target, is_self, concept, label):
        array.setflags(write=False)
    return plan


def extent_plan(graph: NeuronGraph, space: LabelSpace, background: int | None = None) -> DecisionPlan:
    """The plan of top-down inference into a dataset the graph's datasets do not include, read through extents.

    ``space``'s concepts must be the graph's (:func:`hierseg.taxonomy.projection.restrict`). Each concept belongs
    to the label whose extent holds it (:func:`hierseg.taxonomy.translate.owners`), or to ``background`` (VOC's 0),
    or to none. A neuron may choose a child whose subtree holds a concept some label owns, and its self output
    where its own concept is owned; a pixel stops at a concept below which every owned concept has its owner.
    Unlike :func:`decision_plan`, no output the model learned is closed because the target does not name it: a
    model's ``bus`` still leads to a target's ``vehicle`` when the target labels ``car`` apart.
    """
    tax = graph.taxonomy
    idx = graph.concept_index
    owner = owners(tax, space)
    empty = -1 if background is None else background
    value = np.array([empty if owner[c] is None else owner[c] for c in graph.concepts], dtype=np.int64)
    below: dict[str, set[int]] = {}  # the values owned in each concept's subtree
    for c in reversed(graph.concepts):  # artifact order: children after parents
        values = {int(value[idx[c]])} - {-1}
        for child in tax.children(c):
            values |= below[child]
        below[c] = values
    width = graph.max_outputs
    allowed = np.zeros((len(graph), width), dtype=bool)
    for n in graph.neurons:
        allowed[n.index, : len(n.children)] = [bool(below[c]) for c in n.children]
        if n.has_self:
            allowed[n.index, n.self_index] = value[idx[n.concept]] >= 0
    settled = [below[c] == {int(value[idx[c]])} for c in graph.concepts]  # one answer, whatever lies below
    settle = np.arange(len(graph.concepts), dtype=np.int64)
    for c in graph.concepts:
        cur = c
        while cur not in graph.index and not settled[idx[cur]] and len(tax.children(cur)) == 1:
            cur = tax.children(cur)[0]
        settle[idx[c]] = idx[cur]
    stop = np.array([settled[i] or c not in graph.index or not allowed[graph.index[c]].any()
                     for i, c in enumerate(graph.concepts)], dtype=bool)
    label = np.where(value >= 0, value, space.ignore).astype(np.int64)
    target, is_self, concept = _wiring(graph)
    plan = DecisionPlan(space.name, int(settle[idx[tax.root]]), settle, stop, allowed, target, is_self, concept, label)
    for array in (settle, stop, allowed, target, is_self, concept, label):
        array.setflags(write=False)
    return plan


def _wiring(graph: NeuronGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each neuron's outputs send a pixel, which output is its self output, and each neuron's concept."""
    width = graph.max_outputs
    target = np.zeros((len(graph), width), dtype=np.int64)
    is_self = np.zeros((len(graph), width), dtype=bool)
    for n in graph.neurons:
        target[n.index, : len(n.outputs)] = [graph.concept_index[c] for c in n.outputs]
        if n.has_self:
            is_self[n.index, n.self_index] = True
    concept = np.array([graph.concept_index[n.concept] for n in graph.neurons], dtype=np.int64)
    return target, is_self, concept
